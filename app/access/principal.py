"""Who is calling: a signed-in Discord user, an integration's API key, or nobody."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from app.discord.permissions import ADMINISTRATOR, ALL


class PrincipalKind(Enum):
    ANONYMOUS = "ANONYMOUS"
    USER = "USER"
    API_KEY = "API_KEY"


@dataclass(frozen=True, slots=True)
class ViewerGuild:
    """A guild a signed-in user belongs to, as Discord reported it at login or on refresh."""

    id: int
    name: str
    owner: bool
    permissions: int

    @property
    def effective_permissions(self) -> int:
        """Owners and administrators hold every permission, as on Discord."""
        return ALL if self.owner or self.permissions & ADMINISTRATOR else self.permissions


@dataclass(frozen=True, slots=True)
class Principal:
    kind: PrincipalKind
    id: str = ""
    name: str = ""
    # Users: the guilds they are members of. Keys: the guilds they were created for.
    guilds: Mapping[int, ViewerGuild | None] = field(default_factory=dict)
    # Keys: what they were created to do. Users act by their Discord permissions instead.
    scopes: frozenset[str] = frozenset()
    # Where the rate limiter counts this caller's requests.
    bucket: str = ""
    # Signed in through the session cookie: state-changing requests must come from an allowed
    # origin (cross-site request forgery).
    via_cookie: bool = False
    # Why credentials were refused, when they were: the answer to every protected field.
    refused: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.kind is not PrincipalKind.ANONYMOUS

    @property
    def access_scope(self) -> str:
        """Names exactly what this caller may see: cached answers are shared only within it."""
        if self.kind is PrincipalKind.API_KEY:
            return f"key:{self.id}"  # a key's guilds and scopes never change; revocation is checked first
        if self.kind is PrincipalKind.USER:
            digest = hashlib.sha256(
                ",".join(
                    f"{guild_id}:{guild.effective_permissions if guild else 0}"
                    for guild_id, guild in sorted(self.guilds.items())
                ).encode()
            ).hexdigest()[:16]
            return f"user:{self.id}:{digest}"
        return "anonymous"


def anonymous(bucket: str, refused: str | None = None) -> Principal:
    return Principal(PrincipalKind.ANONYMOUS, bucket=bucket, refused=refused)
