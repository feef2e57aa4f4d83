"""Errors of the roles feature, each with the GraphQL error code clients see and act on."""

from __future__ import annotations

from app.errors import PollyError


class RolesError(PollyError):
    pass


class InvalidInput(RolesError):
    code = "BAD_USER_INPUT"


class GuildNotFound(RolesError):
    code = "NOT_FOUND"


class ChannelNotFound(RolesError):
    code = "BAD_USER_INPUT"


class LiveUnavailable(RolesError):
    """Live updates need Redis's pub/sub, which cannot be reached."""

    code = "LIVE_UNAVAILABLE"


class DiscordUnavailable(RolesError):
    """Discord cannot answer now and no earlier copy of the data is kept."""

    code = "DISCORD_UNAVAILABLE"


def guild_not_found(guild_id: int) -> GuildNotFound:
    """The one answer for a guild that does not exist, and for one the caller may not see: the
    two must not be told apart."""
    return GuildNotFound(f"Guild {guild_id} does not exist.")
