"""Discord on a signed-in user's behalf: OAuth2 code exchange, refresh and revocation, and the
two reads login needs (who is this, which guilds are theirs).

The bot's calls go through client.py, on discord.py's HTTPClient; that client speaks only bot
tokens, so these calls, made with a user's Bearer token, use aiohttp directly. Failures come
out as the same :class:`DiscordRestError` family.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import urlencode

import aiohttp

from app.discord.client import (
    DiscordForbidden,
    DiscordRestError,
    DiscordUnauthorized,
    DiscordUnreachable,
)

log = logging.getLogger(__name__)

LOGIN_SCOPES = "identify guilds"
GUILD_PAGE = 200  # Discord's largest page of /users/@me/guilds


class OAuthRefused(DiscordRestError):
    """Discord refused a code or refresh token (used, expired, revoked, or not ours)."""


@dataclass(frozen=True, slots=True)
class TokenGrant:
    access_token: str
    refresh_token: str | None
    expires_at: datetime
    scope: str


def site_url(api_url: str) -> str:
    """``https://discord.com`` from ``https://discord.com/api/v10`` (the sandbox's likewise)."""
    base = api_url.rstrip("/")
    for suffix in ("/api/v10", "/api"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


class DiscordOAuth:
    def __init__(
        self,
        *,
        api_url: str,
        client_id: str | Callable[[], str],
        client_secret: str,
        timeout: float = 8.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def client_id(self) -> str:
        return self._client_id if isinstance(self._client_id, str) else self._client_id()

    def authorize_url(self, *, redirect_uri: str, state: str, code_challenge: str) -> str:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "scope": LOGIN_SCOPES,
                "redirect_uri": redirect_uri,
                "state": state,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
                "prompt": "none",
            }
        )
        return f"{site_url(self.api_url)}/oauth2/authorize?{query}"

    async def exchange_code(self, code: str, *, redirect_uri: str, code_verifier: str) -> TokenGrant:
        return await self._grant(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            }
        )

    async def refresh(self, refresh_token: str) -> TokenGrant:
        return await self._grant({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def revoke(self, token: str) -> None:
        await self._request("POST", "/oauth2/token/revoke", form={"token": token}, client_auth=True)

    async def user(self, access_token: str) -> dict[str, Any]:
        return cast(dict[str, Any], await self._request("GET", "/users/@me", bearer=access_token))

    async def guilds(self, access_token: str) -> list[dict[str, Any]]:
        """Every guild the user is in, all pages."""
        guilds: list[dict[str, Any]] = []
        after = "0"
        while True:
            page = cast(
                list[dict[str, Any]],
                await self._request(
                    "GET", f"/users/@me/guilds?limit={GUILD_PAGE}&after={after}", bearer=access_token
                ),
            )
            guilds.extend(page)
            if len(page) < GUILD_PAGE:
                return guilds
            after = str(max(int(guild["id"]) for guild in page))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _grant(self, form: dict[str, str]) -> TokenGrant:
        body = cast(dict[str, Any], await self._request("POST", "/oauth2/token", form=form, client_auth=True))
        try:
            return TokenGrant(
                access_token=str(body["access_token"]),
                refresh_token=body.get("refresh_token"),
                expires_at=datetime.now(UTC) + timedelta(seconds=int(body.get("expires_in", 604800))),
                scope=str(body.get("scope", "")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DiscordUnreachable(f"Discord's token answer lacks {error}.") from error

    async def _request(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | None = None,
        bearer: str | None = None,
        client_auth: bool = False,
    ) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        elif client_auth:
            credentials = f"{self.client_id}:{self._client_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode("ascii")
        deadline = asyncio.get_running_loop().time() + self._timeout
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    async with self._session.request(
                        method, self.api_url + path, data=form, headers=headers
                    ) as response:
                        body = await response.json(content_type=None) if response.content_length != 0 else {}
                        if response.status == 429:
                            # Waited out within our deadline; past it, the timeout answers.
                            await asyncio.sleep(float((body or {}).get("retry_after", 1.0)))
                            continue
                        return _checked(response.status, body)
        except TimeoutError:
            raise DiscordUnreachable(f"Discord did not answer in time ({self._timeout:g}s).") from None
        except (aiohttp.ClientError, OSError, ValueError) as error:
            raise DiscordUnreachable(f"Discord cannot be reached: {error}") from error


def _checked(status: int, body: Any) -> Any:
    if status < 300:
        return body
    detail = body if isinstance(body, dict) else {}
    text = str(detail.get("error_description") or detail.get("message") or detail.get("error") or status)
    if status == 400 and detail.get("error") in ("invalid_grant", "invalid_request"):
        raise OAuthRefused(f"Discord refused the login: {text}", status=status)
    if status == 401:
        raise DiscordUnauthorized(f"Discord no longer accepts this login: {text}", status=status)
    if status == 403:
        raise DiscordForbidden(text, status=status, code=int(detail.get("code", 0) or 0))
    if status >= 500:
        raise DiscordUnreachable(f"Discord failed with HTTP {status}: {text}", status=status)
    raise DiscordRestError(f"Discord answered HTTP {status}: {text}", status=status)
