"""The ``viewer`` query's types: who the caller is, which guilds they may use, and how."""

from __future__ import annotations

from enum import Enum

import strawberry
from strawberry.types import Info

from app.access.policy import READ_ROLES, WRITE_POLLS, allows
from app.access.principal import Principal, PrincipalKind
from app.graphql.context import RequestContext
from app.roles.errors import RolesError


@strawberry.enum(description="How the caller proved who they are.")
class ViewerKind(Enum):
    USER = strawberry.enum_value("USER", description="A person, logged in with Discord.")
    API_KEY = strawberry.enum_value("API_KEY", description="An integration, with an API key.")


@strawberry.type(description="A guild the caller may use, and what they may do there.")
class ViewerGuild:
    id: strawberry.ID
    known_name: strawberry.Private[str | None]
    owner: bool
    permissions: str = strawberry.field(
        description="The user's guild-level Discord permission bit set, as a decimal string (0 for keys)."
    )
    can_read_roles: bool
    can_manage: bool = strawberry.field(
        description="May create and run polls: MANAGE_GUILD or ADMINISTRATOR, or a key with polls:write."
    )

    @strawberry.field(
        description="As Discord names it (for API keys with roles:read, as the bot's cache knows it);"
        " null for a guild the bot is not in, or for a key without roles:read."
    )
    async def name(self, info: Info[RequestContext, None]) -> str | None:
        if self.known_name is not None:
            return self.known_name
        if not self.can_read_roles:
            return None  # the guild's cached data is read under roles:read, its name included
        # A key's record holds guild ids only: the name comes through the request's loader,
        # so every guild of the list is one batched cache read.
        try:
            snapshot = await info.context.loader.guild(int(self.id))
        except RolesError:
            return None
        return snapshot.name or None


@strawberry.type(description="The caller.")
class Viewer:
    kind: ViewerKind
    id: strawberry.ID = strawberry.field(description="The Discord user id, or the API key's id.")
    name: str
    scopes: list[str] = strawberry.field(
        description="An API key's scopes; empty for users, whose Discord permissions decide per guild."
    )
    guilds: list[ViewerGuild] = strawberry.field(description="Lowest ids first.")

    @classmethod
    def of(cls, principal: Principal) -> Viewer:
        guilds = []
        for guild_id, guild in sorted(principal.guilds.items()):
            guilds.append(
                ViewerGuild(
                    id=strawberry.ID(str(guild_id)),
                    known_name=None if guild is None else guild.name,
                    owner=guild is not None and guild.owner,
                    permissions=str(0 if guild is None else guild.permissions),
                    can_read_roles=allows(principal, guild_id, READ_ROLES),
                    can_manage=allows(principal, guild_id, WRITE_POLLS),
                )
            )
        kind = ViewerKind.USER if principal.kind is PrincipalKind.USER else ViewerKind.API_KEY
        return cls(
            kind=kind,
            id=strawberry.ID(principal.id),
            name=principal.name,
            scopes=sorted(principal.scopes),
            guilds=guilds,
        )
