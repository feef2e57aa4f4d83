"""Discord login: the OAuth2 authorization-code flow with ``state`` and PKCE (S256).

``begin`` picks a fresh state and verifier, keeps them in a signed cookie, and sends the
browser to Discord; ``complete`` accepts the code only with that cookie's state, exchanges it
with the verifier, and opens a session. A forged or replayed callback fails at one of those
steps, with a sentence, and no session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

from app.access.authenticator import Authenticator
from app.access.cookies import CookieSigner, LoginState
from app.discord.client import DiscordRestError
from app.discord.oauth import DiscordOAuth, OAuthRefused
from app.storage.database import DatabaseError
from app.storage.login_sessions import LoginSessionStore

log = logging.getLogger(__name__)


class LoginFailed(Exception):
    """The login cannot go on; ``message`` tells the user what to do."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class Started:
    authorize_url: str
    login_cookie: str


@dataclass(frozen=True, slots=True)
class Completed:
    session_cookie: str
    next_path: str


def safe_next(path: str | None) -> str:
    """Only paths on this site: an open redirect would make our login a phishing tool."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class LoginFlow:
    def __init__(
        self,
        oauth: DiscordOAuth,
        sessions: LoginSessionStore,
        signer: CookieSigner,
        authenticator: Authenticator,
    ) -> None:
        self._oauth = oauth
        self._sessions = sessions
        self._signer = signer
        self._authenticator = authenticator

    def begin(self, redirect_uri: str, next_path: str | None) -> Started:
        login = LoginState(
            state=secrets.token_urlsafe(24),
            verifier=secrets.token_urlsafe(48),
            next_path=safe_next(next_path),
        )
        url = self._oauth.authorize_url(
            redirect_uri=redirect_uri, state=login.state, code_challenge=_challenge(login.verifier)
        )
        return Started(url, self._signer.login_cookie(login))

    async def complete(
        self, *, code: str | None, state: str | None, login_cookie: str | None, redirect_uri: str
    ) -> Completed:
        login = None if login_cookie is None else self._signer.login_state(login_cookie)
        if login is None:
            raise LoginFailed("This login was not started here or took too long; start again at /auth/login.")
        if not state or not hmac.compare_digest(state.encode(), login.state.encode()):
            raise LoginFailed(
                "This login's state does not match the one we sent; start again at /auth/login."
            )
        if not code:
            raise LoginFailed("Discord sent no code; start again at /auth/login.")
        try:
            grant = await self._oauth.exchange_code(
                code, redirect_uri=redirect_uri, code_verifier=login.verifier
            )
            user = await self._oauth.user(grant.access_token)
        except OAuthRefused as error:
            raise LoginFailed(
                "Discord refused this login code (used already, or expired); start again at /auth/login."
            ) from error
        except DiscordRestError as error:
            raise LoginFailed(f"Discord could not complete the login ({error}); try again.", 502) from error
        try:
            _, session_id = await self._sessions.create(
                user_id=str(user["id"]),
                username=str(user.get("global_name") or user.get("username") or user["id"]),
                access_token=grant.access_token,
                refresh_token=grant.refresh_token,
                token_expires_at=grant.expires_at,
                scopes=grant.scope,
                lifetime_seconds=self._authenticator.session_ttl,
            )
        except DatabaseError as error:
            raise LoginFailed("Logins cannot be recorded right now; try again in a moment.", 503) from error
        return Completed(self._signer.session_cookie(session_id), login.next_path)

    async def end(self, session_cookie: str | None) -> None:
        """Log out: the session is gone from the database and the cache, and Discord forgets the
        token, so the cookie is worthless even if a copy of it survives."""
        if session_cookie is None:
            return
        session_id = self._signer.session_id(session_cookie, max_age=self._authenticator.session_ttl)
        if session_id is None:
            return
        session = await self._sessions.get(session_id)
        await self._sessions.delete(session_id)
        await self._authenticator.forget_session(session_id, None if session is None else session.user_id)
        if session is not None:
            try:
                await self._oauth.revoke(session.access_token)
            except DiscordRestError as error:
                # The session is already gone here; Discord's token expires on its own.
                log.info("Discord did not revoke a logged-out token: %s", error)
