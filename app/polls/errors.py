"""Errors of the polls feature, each with the GraphQL error code clients see and act on."""

from __future__ import annotations

from app.errors import PollyError


class PollError(PollyError):
    pass


class PollInputError(PollError):
    """One field of the input is unusable: ``extensions.field`` names it."""

    code = "BAD_USER_INPUT"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)
        self.field = field


class PollNotFound(PollError):
    code = "NOT_FOUND"


class PollConflict(PollError):
    """The poll is not in a state that allows this, or changed since the caller read it:
    ``extensions.currentVersion`` and ``extensions.status`` say what it is now."""

    code = "CONFLICT"

    def __init__(self, message: str, *, current_version: int, status: str) -> None:
        super().__init__(message, currentVersion=current_version, status=status)
        self.current_version = current_version
        self.status = status


def poll_not_found(poll_id: int | str) -> PollNotFound:
    """The one answer for a poll that does not exist, was deleted, or may not be seen."""
    return PollNotFound(f"Poll {poll_id} does not exist.")
