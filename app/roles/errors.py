"""Errors of the roles feature, each with the GraphQL error code clients see and act on."""

from __future__ import annotations


class RolesError(Exception):
    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def extensions(self) -> dict[str, str]:
        """graphql-core copies these into the GraphQL error, on every transport."""
        return {"code": self.code}


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
