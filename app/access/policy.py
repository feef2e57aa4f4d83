"""Who may do what, in one place: every resolver, loader and subscription asks here.

Reading a guild's roles needs membership of that guild, or an API key created for it with
``roles:read``. Writing will need MANAGE_GUILD or ADMINISTRATOR in the guild, or a key with the
matching write scope. A guild the caller may not see is answered exactly like a guild that does
not exist, so nobody can probe which guilds exist or use the bot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import discord

from app.access.errors import LOGIN_HINT, Forbidden, Unauthenticated
from app.access.principal import Principal, PrincipalKind
from app.discord.permissions import ADMINISTRATOR
from app.roles.errors import GuildNotFound, guild_not_found

MANAGE_GUILD = discord.Permissions(manage_guild=True).value


@dataclass(frozen=True)
class Action:
    scope: str  # what an API key needs
    permission: int  # what a member needs (0: membership is enough)
    describe: str  # for error messages: "read this guild's roles"


READ_ROLES = Action("roles:read", 0, "read roles")
READ_POLLS = Action("polls:read", 0, "read polls")
WRITE_POLLS = Action("polls:write", MANAGE_GUILD | ADMINISTRATOR, "create and run polls")


def require_authenticated(principal: Principal) -> None:
    if not principal.authenticated:
        raise Unauthenticated(principal.refused or f"Sign in first: {LOGIN_HINT}.")


def require_scope(principal: Principal, action: Action) -> None:
    """A key's scopes are checked before any guild: the answer says nothing about the guild."""
    require_authenticated(principal)
    if principal.kind is PrincipalKind.API_KEY and action.scope not in principal.scopes:
        raise Forbidden(
            f"This API key may not {action.describe}: it lacks the {action.scope} scope. "
            f"Create a key with --scope {action.scope}."
        )


def authorize(principal: Principal, guild_id: int, action: Action) -> None:
    """Raise unless ``principal`` may do ``action`` in guild ``guild_id``."""
    require_scope(principal, action)
    if guild_id not in principal.guilds:
        raise guild_not_found(guild_id)
    if not _holds(principal, guild_id, action):
        raise Forbidden(
            f"You may not {action.describe} in guild {guild_id}: that needs the Manage Server "
            "or Administrator permission there."
        )


def _holds(principal: Principal, guild_id: int, action: Action) -> bool:
    """Whether a principal that can see the guild has the permission ``action`` needs there."""
    if principal.kind is not PrincipalKind.USER or not action.permission:
        return True
    guild = principal.guilds[guild_id]
    held = 0 if guild is None else guild.effective_permissions
    return bool(held & action.permission)


def permitted(principal: Principal, guild_ids: Iterable[int], action: Action) -> list[int]:
    """The guilds among ``guild_ids`` where ``principal`` may do ``action``, in order."""
    require_scope(principal, action)
    return [g for g in guild_ids if g in principal.guilds and _holds(principal, g, action)]


def allows(principal: Principal, guild_id: int, action: Action) -> bool:
    try:
        authorize(principal, guild_id, action)
    except (Forbidden, GuildNotFound, Unauthenticated):
        return False
    return True
