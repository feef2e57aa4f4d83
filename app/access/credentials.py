"""What a request presents as proof of who it is: an Authorization header (or, on WebSockets,
the connection-init payload's ``authorization``), or the session cookie."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from starlette.datastructures import URL
from starlette.requests import cookie_parser

from app.access.cookies import SESSION_COOKIE


@dataclass(frozen=True, slots=True)
class Credentials:
    authorization: str | None
    session_cookie: str | None
    client: str  # the peer's address: anonymous callers are rate limited by it
    origin: str | None  # the Origin header, which browsers send with cross-site requests
    own_origin: str  # scheme://host this request was addressed to

    @property
    def address_bucket(self) -> str:
        """The rate-limit bucket of the sender's address."""
        return f"ip:{self.client}"

    @property
    def bearer(self) -> tuple[str, str] | None:
        """The Authorization header as (scheme, token); None without one."""
        if self.authorization is None:
            return None
        scheme, _, token = self.authorization.strip().partition(" ")
        return scheme, token.strip()


def from_scope(scope: Mapping[str, Any]) -> Credentials:
    """Read an ASGI HTTP or WebSocket scope."""
    authorization = cookie = origin = None
    host = ""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"cookie":
            cookie = cookie_parser(value.decode("latin-1")).get(SESSION_COOKIE)
        elif name == b"origin":
            origin = value.decode("latin-1")
        elif name == b"host":
            host = value.decode("latin-1")
    secure = scope.get("scheme") in ("https", "wss")
    client = scope.get("client") or ("unknown", 0)
    return Credentials(
        authorization=authorization,
        session_cookie=cookie or None,
        client=str(client[0]),
        origin=origin,
        own_origin=f"{'https' if secure else 'http'}://{host}",
    )


def with_connection_params(credentials: Credentials, params: object) -> Credentials:
    """A WebSocket's connection-init payload may carry ``{"authorization": "Bearer <key>"}``
    (browsers cannot set headers on WebSockets); it overrides the handshake's."""
    if not isinstance(params, dict):
        return credentials
    for name, value in params.items():
        if isinstance(name, str) and name.lower() == "authorization" and isinstance(value, str):
            return replace(credentials, authorization=value)
    return credentials


def trusted_origin(credentials: Credentials, allowed: frozenset[str]) -> bool:
    """Whether a cookie-authenticated request may change state: it must say it comes from this
    site or an allowed one. Browsers always send Origin on such requests; its absence means a
    client we cannot vouch for."""
    origin = credentials.origin
    if origin is None or origin == "null":
        return False
    origin = origin.rstrip("/")
    return origin == credentials.own_origin or origin in allowed


def public_origin(public_url: str) -> str:
    """The Origin browsers send from pages under ``public_url`` (scheme://host[:port])."""
    url = URL(public_url)
    default_port = {"http": 80, "https": 443}.get(url.scheme)
    port = "" if url.port is None or url.port == default_port else f":{url.port}"
    return f"{url.scheme}://{url.hostname}{port}"
