"""What resolvers see as ``info.context``: the request's loader and what the answer depended on."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from app.cache.event_log import EventLog
from app.graphql.loaders import RolesLoader
from app.live.hub import EventHub
from app.roles.service import RoleService
from app.roles.snapshot import Stale


@dataclass
class RequestContext:
    roles: RoleService
    request_id: str = field(default_factory=lambda: secrets.token_hex(8))
    # The access scope the answer was computed for; part of the response cache key.
    scope: str = "public"
    max_guilds: int = 25
    # Live updates (subscriptions); None where a context serves no subscriptions.
    hub: EventHub | None = None
    events: EventLog | None = None
    # Guild data the answer was computed from, by version: a cached answer is dropped with it.
    versions: dict[int, int] = field(default_factory=dict)
    stale: dict[int, Stale] = field(default_factory=dict)
    loader: RolesLoader = field(init=False)

    def __post_init__(self) -> None:
        self.loader = RolesLoader(self.roles, self.versions, self.stale, max_guilds=self.max_guilds)

    @property
    def cacheable(self) -> bool:
        """Whether the answer may be served to later requests: not when built from stale data."""
        return not self.stale
