"""The two cookies of login, signed with POLLY_SECRET_KEY (itsdangerous).

``polly_session`` holds only a random session id: the session itself (who, Discord tokens) is
in the database, so a stolen cookie can be ended from the server and the cookie never carries
a Discord token. ``polly_login`` lives for the minutes between /auth/login and /auth/callback
and holds the OAuth ``state`` and PKCE verifier; being signed, it cannot be forged, and being
HttpOnly and SameSite=Lax, other sites cannot read or send it along with their own requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "polly_session"
LOGIN_COOKIE = "polly_login"
LOGIN_MAX_AGE = 600  # seconds to get through Discord's consent screen


@dataclass(frozen=True, slots=True)
class LoginState:
    state: str
    verifier: str
    next_path: str


class CookieSigner:
    def __init__(self, secret: str) -> None:
        self._sessions = URLSafeTimedSerializer(secret, salt="polly.session")
        self._logins = URLSafeTimedSerializer(secret, salt="polly.login")

    def session_cookie(self, session_id: str) -> str:
        return self._sessions.dumps(session_id)

    def session_id(self, cookie: str, *, max_age: int) -> str | None:
        """The session id in a cookie we signed within ``max_age`` seconds; None otherwise."""
        value = _loads(self._sessions, cookie, max_age)
        return value if isinstance(value, str) else None

    def login_cookie(self, login: LoginState) -> str:
        return self._logins.dumps([login.state, login.verifier, login.next_path])

    def login_state(self, cookie: str) -> LoginState | None:
        value = _loads(self._logins, cookie, LOGIN_MAX_AGE)
        if isinstance(value, list) and len(value) == 3 and all(isinstance(part, str) for part in value):
            return LoginState(*value)
        return None


def _loads(serializer: URLSafeTimedSerializer, cookie: str, max_age: int) -> Any:
    try:
        return serializer.loads(cookie, max_age=max_age)
    except BadSignature:  # also expired (SignatureExpired): both mean "log in again"
        return None
