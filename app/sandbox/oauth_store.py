"""OAuth2 as Discord runs it for one application: authorization codes, Bearer tokens, refresh.

The store is plain data, without HTTP: ``app.sandbox.oauth`` turns requests into calls here and
``OAuthError`` into RFC 6749 error bodies. Codes and tokens are kept only as SHA-256 digests, so
a lookup never compares a secret byte by byte and a dump of the store holds nothing usable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from app.sandbox.fixture import Application

# The scopes a "Log in with Discord" client may ask for; Discord knows more, the sandbox serves these.
SCOPES = ("identify", "email", "guilds", "guilds.members.read", "connections")
CHALLENGE_METHODS = ("S256", "plain")
# RFC 7636 4.1: 43 to 128 characters from the unreserved set, for verifiers and challenges alike.
_PKCE_TEXT = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


class OAuthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    access_token_ttl: int = Field(default=604_800, gt=0, description="Seconds an access token lives.")
    code_ttl: int = Field(default=600, gt=0, description="Seconds an authorization code lives.")


class OAuthError(Exception):
    """An RFC 6749 error: ``{"error": ..., "error_description": ...}`` with its HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def invalid_parameter(name: str) -> OAuthError:
    return OAuthError("invalid_grant", f'Invalid "{name}" in request.')


def missing_parameter(name: str) -> OAuthError:
    return OAuthError("invalid_request", f'Missing "{name}" in request.')


def parse_scopes(text: str) -> tuple[str, ...]:
    """The scopes of a space-separated ``scope`` parameter, in order, each once."""
    scopes = tuple(dict.fromkeys(text.split()))
    if not scopes:
        known = " ".join(SCOPES)
        raise OAuthError(
            "invalid_scope", f"Ask for at least one scope, for example scope=identify ({known})."
        )
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown:
        raise OAuthError(
            "invalid_scope",
            f"Unknown scope {' '.join(unknown)!r}; the sandbox knows {', '.join(SCOPES)}.",
        )
    return scopes


def parse_challenge(challenge: str | None, method: str | None) -> tuple[str, str] | None:
    """``(challenge, method)`` of a PKCE authorization request, or None without PKCE."""
    if challenge is None:
        if method is not None:
            raise OAuthError("invalid_request", "code_challenge_method was sent without a code_challenge.")
        return None
    # RFC 7636 4.3: a challenge without a method is a plain one.
    method = method or "plain"
    if method not in CHALLENGE_METHODS:
        raise OAuthError("invalid_request", f"code_challenge_method must be S256 or plain, not {method!r}.")
    if not _PKCE_TEXT.fullmatch(challenge):
        raise OAuthError(
            "invalid_request",
            "code_challenge must be 43 to 128 characters of A-Z, a-z, 0-9, '-', '.', '_' and '~' "
            "(for S256: base64url of the verifier's SHA-256, without padding).",
        )
    return challenge, method


def verifier_matches(challenge: str, method: str, verifier: str) -> bool:
    if not _PKCE_TEXT.fullmatch(verifier):
        return False
    if method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=")
        return hmac.compare_digest(expected, challenge.encode("ascii"))
    return hmac.compare_digest(verifier.encode("ascii"), challenge.encode("ascii"))


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redirect_uri_allowed(application: Application, uri: str) -> bool:
    """Registered URIs match exactly; with none registered, any http(s) URI on a loopback host."""
    if application.redirect_uris:
        return uri in application.redirect_uris
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        _ = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and host is not None
        and not parts.fragment
        and is_loopback_host(host)
    )


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(eq=False)
class Grant:
    """One authorization: a code and every token pair issued from it (directly or by refresh)."""

    client_id: int
    user_id: int
    pairs: list[TokenPair] = field(default_factory=list)


@dataclass(eq=False)
class TokenPair:
    grant: Grant
    scopes: tuple[str, ...]
    access_key: str
    refresh_key: str
    expires_at: float


@dataclass(eq=False)
class AuthorizationCode:
    client_id: int
    redirect_uri: str
    scopes: tuple[str, ...]
    user_id: int
    challenge: tuple[str, str] | None
    expires_at: float
    # Set by the one successful exchange; a replay revokes what it issued (RFC 6749 4.1.2).
    grant: Grant | None = None


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    scopes: tuple[str, ...]

    def body(self) -> dict[str, object]:
        return {
            "token_type": "Bearer",
            "access_token": self.access_token,
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "scope": " ".join(self.scopes),
        }


class OAuthStore:
    """Codes and tokens of one sandbox; ``clock`` (monotonic seconds) is replaceable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.config = OAuthConfig()
        # Who approves authorization requests that name no user (the control API sets it).
        self.approver: int | None = None
        self._codes: dict[str, AuthorizationCode] = {}
        self._access: dict[str, TokenPair] = {}
        self._refresh: dict[str, TokenPair] = {}

    # -- authorization codes --------------------------------------------------------------------

    def issue_code(
        self,
        *,
        client_id: int,
        redirect_uri: str,
        scopes: tuple[str, ...],
        user_id: int,
        challenge: tuple[str, str] | None,
    ) -> str:
        now = self.clock()
        for key in [key for key, code in self._codes.items() if code.expires_at <= now]:
            del self._codes[key]
        code = secrets.token_urlsafe(24)
        self._codes[_digest(code)] = AuthorizationCode(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scopes=scopes,
            user_id=user_id,
            challenge=challenge,
            expires_at=now + self.config.code_ttl,
        )
        return code

    def exchange_code(
        self, *, code: str, client_id: int, redirect_uri: str | None, verifier: str | None
    ) -> IssuedTokens:
        """Redeem a code. A failed attempt leaves the code usable; only success uses it up."""
        found = self._codes.get(_digest(code))
        if found is None or found.expires_at <= self.clock() or found.client_id != client_id:
            raise invalid_parameter("code")
        if found.grant is not None:
            self._revoke_grant(found.grant)
            raise invalid_parameter("code")
        if redirect_uri is None:
            raise missing_parameter("redirect_uri")
        if redirect_uri != found.redirect_uri:
            raise invalid_parameter("redirect_uri")
        if found.challenge is None:
            # A verifier for a code issued without a challenge is a PKCE downgrade (RFC 9700 2.1.1).
            if verifier is not None:
                raise invalid_parameter("code_verifier")
        elif verifier is None:
            raise missing_parameter("code_verifier")
        elif not verifier_matches(*found.challenge, verifier):
            raise invalid_parameter("code_verifier")
        found.grant = Grant(client_id=client_id, user_id=found.user_id)
        return self._issue(found.grant, found.scopes)

    # -- tokens ---------------------------------------------------------------------------------

    def _issue(self, grant: Grant, scopes: tuple[str, ...]) -> IssuedTokens:
        now = self.clock()
        for key in [key for key, pair in self._access.items() if pair.expires_at <= now]:
            del self._access[key]
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        ttl = self.config.access_token_ttl
        pair = TokenPair(grant, scopes, _digest(access), _digest(refresh), now + ttl)
        # Pairs with neither token live any more have nothing left to revoke.
        grant.pairs = [
            p for p in grant.pairs if p.access_key in self._access or p.refresh_key in self._refresh
        ]
        grant.pairs.append(pair)
        self._access[pair.access_key] = pair
        self._refresh[pair.refresh_key] = pair
        return IssuedTokens(access, refresh, ttl, scopes)

    def refresh(self, *, refresh_token: str, client_id: int, scope: str | None) -> IssuedTokens:
        """A new pair for a refresh token, which stops working; the old access token lives on
        until it expires. ``scope`` may narrow the scopes (RFC 6749 6), never widen them."""
        pair = self._refresh.get(_digest(refresh_token))
        if pair is None or pair.grant.client_id != client_id:
            raise invalid_parameter("refresh_token")
        scopes = pair.scopes
        if scope is not None:
            wanted = parse_scopes(scope)
            wider = [name for name in wanted if name not in pair.scopes]
            if wider:
                raise OAuthError(
                    "invalid_scope",
                    f"The refresh token was not granted {' '.join(wider)!r}; "
                    "ask the user to authorize again.",
                )
            scopes = wanted
        del self._refresh[pair.refresh_key]
        return self._issue(pair.grant, scopes)

    def access(self, token: str) -> TokenPair | None:
        """The live pair of an access token: None when unknown, revoked or expired."""
        pair = self._access.get(_digest(token))
        if pair is None or pair.expires_at <= self.clock():
            return None
        return pair

    def revoke(self, token: str, client_id: int, hint: str | None = None) -> bool:
        """Revoke the authorization an access or refresh token belongs to: the token, its pair
        and every pair refreshed from the same code. Unknown tokens are no error (RFC 7009 2.2)."""
        key = _digest(token)
        tables = (self._refresh, self._access) if hint == "refresh_token" else (self._access, self._refresh)
        for table in tables:
            pair = table.get(key)
            if pair is not None and pair.grant.client_id == client_id:
                self._revoke_grant(pair.grant)
                return True
        return False

    def _revoke_grant(self, grant: Grant) -> None:
        for pair in grant.pairs:
            self._access.pop(pair.access_key, None)
            self._refresh.pop(pair.refresh_key, None)
        grant.pairs.clear()

    def expire(self, user_id: int | None = None) -> int:
        """End the live access tokens of ``user_id`` (or everyone) now; refresh tokens keep working."""
        now = self.clock()
        expired = 0
        for pair in self._access.values():
            if pair.expires_at > now and user_id in (None, pair.grant.user_id):
                pair.expires_at = now
                expired += 1
        return expired
