"""Why a caller is turned away: each error carries the code clients act on."""

from __future__ import annotations

from app.errors import PollyError

LOGIN_HINT = "log in (/auth/login) or send an API key as Authorization: Bearer <key>"


class Unauthenticated(PollyError):
    """No credentials, or credentials that are no longer good (revoked key, ended session)."""

    code = "UNAUTHENTICATED"


class Forbidden(PollyError):
    """Known caller, not allowed to do this (a key without the scope, a member without the right)."""

    code = "FORBIDDEN"


class AccessUnavailable(PollyError):
    """Credentials cannot be checked now: the database cannot be reached."""

    code = "SERVICE_UNAVAILABLE"

    def __init__(self) -> None:
        super().__init__("Credentials cannot be checked right now; try again in a moment.")


class RateLimited(PollyError):
    code = "RATE_LIMITED"

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, round(retry_after + 0.499))
        super().__init__(f"Too many requests; retry in {seconds} s.", retryAfter=seconds)
        self.retry_after = seconds
