"""The one door to Discord's REST API.

Every REST call the service makes goes through :class:`DiscordRest`, which drives discord.py's
own ``HTTPClient`` — its per-route buckets, global limit and 429 retries included — pointed at
``POLLY_DISCORD_API_URL``. Failures come out as :class:`DiscordRestError` subclasses that say
whether retrying later can help, so callers never handle discord.py's exceptions.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Any, Self, cast

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import HTTPClient

from app.telemetry.discord_calls import discord_trace


class DiscordRestError(Exception):
    """Discord answered with an error, or could not be reached."""

    def __init__(self, message: str, *, status: int = 0, code: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class DiscordNotFound(DiscordRestError):
    """The guild, role, channel, member or message does not exist (HTTP 404)."""


class DiscordForbidden(DiscordRestError):
    """The bot may not do or see this (HTTP 403: missing access or permissions)."""


class DiscordUnauthorized(DiscordRestError):
    """Discord refused the bot token (HTTP 401)."""


class DiscordUnreachable(DiscordRestError):
    """Discord failed or was too slow (5xx, timeout, network, or a rate limit past our bound).

    Retrying later may help; serving the last known data is the right answer meanwhile.
    """


def point_discord_py_at(api_url: str, gateway_url: str) -> None:
    """Make discord.py talk to ``api_url`` and ``gateway_url`` instead of discord.com.

    discord.py reads both from class attributes (``Route.BASE`` and
    ``DiscordWebSocket.DEFAULT_GATEWAY``) rather than from its clients, so the setting is
    per process; a process talks to one Discord.
    """
    discord.http.Route.BASE = api_url.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def _discard_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def translate(error: Exception) -> DiscordRestError:
    """Turn what discord.py or aiohttp raised into one of our errors."""
    if isinstance(error, DiscordRestError):
        return error
    if isinstance(error, discord.RateLimited):
        return DiscordUnreachable(
            f"Discord rate limited the bot for {error.retry_after:.1f}s, longer than we wait.", status=429
        )
    if isinstance(error, discord.HTTPException):
        status, code, text = error.status, error.code, error.text or str(error)
        if status == 401:
            return DiscordUnauthorized(f"Discord refused the bot token: {text}", status=status, code=code)
        if status == 404:
            return DiscordNotFound(text, status=status, code=code)
        if status == 403:
            return DiscordForbidden(text, status=status, code=code)
        if status == 429 or status >= 500:
            return DiscordUnreachable(f"Discord failed with HTTP {status}: {text}", status=status, code=code)
        return DiscordRestError(text, status=status, code=code)
    if isinstance(error, TimeoutError):
        return DiscordUnreachable("Discord did not answer in time.")
    if isinstance(error, aiohttp.ClientError | OSError):
        return DiscordUnreachable(f"Discord cannot be reached: {error}")
    raise error


class DiscordRest:
    """Discord's REST API for one bot token.

    ``timeout`` bounds each call as a whole, waits for 429s and retries of 5xx included; past
    it the call fails with :class:`DiscordUnreachable`. ``max_ratelimit_wait`` is the longest
    429 that discord.py waits out rather than failing at once (discord.py's floor is 30 s).
    """

    def __init__(
        self,
        *,
        api_url: str,
        token: str,
        gateway_url: str | None = None,
        max_ratelimit_wait: float = 30.0,
        timeout: float = 10.0,
        max_in_flight: int = 64,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.gateway_url = gateway_url or DiscordWebSocket.DEFAULT_GATEWAY.human_repr()
        self._token = token
        self._max_ratelimit_wait = max_ratelimit_wait
        self._timeout = timeout
        # Bounds the calls under way, counting those a caller gave up on that still run.
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._http: HTTPClient | None = None
        self._opening = asyncio.Lock()
        self.bot_user: dict[str, Any] = {}
        self.last_success: float | None = None
        self.last_failure: tuple[float, str] | None = None

    @property
    def bot_user_id(self) -> int:
        if not self.bot_user:
            raise RuntimeError("DiscordRest is not open; call open() or ensure_open() first.")
        return int(self.bot_user["id"])

    @property
    def reachable(self) -> bool:
        """Whether the last call reached Discord (a refusal counts: Discord answered)."""
        if self.last_failure is None:
            return self.last_success is not None
        return self.last_success is not None and self.last_success > self.last_failure[0]

    def should_probe(self, every: float = 5.0) -> bool:
        """Whether to spend a call checking Discord: only while it is failing, at most every
        ``every`` seconds (a healthy Discord is known from the calls the service makes)."""
        if self.reachable:
            return False
        last = max(self.last_success or 0.0, self.last_failure[0] if self.last_failure else 0.0)
        return time.time() - last >= every

    async def ensure_open(self) -> None:
        """Log in unless already logged in (e.g. Discord was down when the service started)."""
        if self._http is not None:
            return
        async with self._opening:
            if self._http is None:
                await self.open()

    async def open(self) -> dict[str, Any]:
        """Log in: checks the token with ``GET /users/@me`` and returns the bot's user."""
        point_discord_py_at(self.api_url, self.gateway_url)
        http = HTTPClient(
            asyncio.get_running_loop(),
            max_ratelimit_timeout=self._max_ratelimit_wait,
            http_trace=discord_trace(),
        )
        try:
            user = await self._call(http.static_login(self._token))
        except discord.LoginFailure as error:
            await http.close()
            raise DiscordUnauthorized(
                "Discord refused the bot token (POLLY_DISCORD_TOKEN).", status=401
            ) from error
        except BaseException:
            await http.close()
            raise
        self._http = http
        self.bot_user = cast(dict[str, Any], user)
        return self.bot_user

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def _call(self, request: Any) -> Any:
        # The request runs shielded: cancelled while waiting out a global 429, discord.py would
        # leave its global lock closed and stall every later call. On timeout the caller gets
        # its answer now and the request finishes (or fails) on its own.
        deadline = asyncio.get_running_loop().time() + self._timeout
        try:
            async with asyncio.timeout_at(deadline):
                await self._in_flight.acquire()
        except TimeoutError:
            request.close()
            self._failed("Too many Discord calls are still under way.")
            raise DiscordUnreachable(
                f"Too many Discord calls are still under way; none finished within {self._timeout:g}s."
            ) from None
        task = asyncio.ensure_future(request)
        task.add_done_callback(lambda _: self._in_flight.release())
        try:
            async with asyncio.timeout_at(deadline):
                result = await asyncio.shield(task)
        except TimeoutError:
            task.add_done_callback(_discard_outcome)
            self._failed(f"Discord did not answer in time ({self._timeout:g}s).")
            raise DiscordUnreachable(f"Discord did not answer in time ({self._timeout:g}s).") from None
        except discord.LoginFailure:
            raise
        except Exception as error:
            translated = translate(error)
            if isinstance(translated, DiscordUnreachable):
                self._failed(str(translated))
            else:
                self.last_success = time.time()
            raise translated from error
        self.last_success = time.time()
        return result

    def _failed(self, reason: str) -> None:
        self.last_failure = (time.time(), reason)

    @property
    def http(self) -> HTTPClient:
        if self._http is None:
            raise RuntimeError("DiscordRest is not open; call open() or use 'async with'.")
        return self._http

    # -- the calls this product makes ----------------------------------------------------------

    async def guild(self, guild_id: int) -> dict[str, Any]:
        return cast(dict[str, Any], await self._call(self.http.get_guild(guild_id, with_counts=False)))

    async def guild_roles(self, guild_id: int) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], await self._call(self.http.get_roles(guild_id)))

    async def guild_channels(self, guild_id: int) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], await self._call(self.http.get_all_guild_channels(guild_id)))

    async def member(self, guild_id: int, user_id: int) -> dict[str, Any]:
        return cast(dict[str, Any], await self._call(self.http.get_member(guild_id, user_id)))

    async def gateway_bot(self) -> dict[str, Any]:
        shards, url, limits = await self._call(self.http.get_bot_gateway())
        return {"shards": shards, "url": url, "session_start_limit": limits}

    # -- messages (polls) ---------------------------------------------------------------------

    async def create_message(self, channel_id: int, payload: dict[str, Any]) -> dict[str, Any]:
        route = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=channel_id)
        return cast(dict[str, Any], await self._call(self.http.request(route, json=payload)))

    async def edit_message(self, channel_id: int, message_id: int, payload: dict[str, Any]) -> dict[str, Any]:
        route = discord.http.Route(
            "PATCH",
            "/channels/{channel_id}/messages/{message_id}",
            channel_id=channel_id,
            message_id=message_id,
        )
        return cast(dict[str, Any], await self._call(self.http.request(route, json=payload)))

    async def delete_message(self, channel_id: int, message_id: int) -> None:
        await self._call(self.http.delete_message(channel_id, message_id))

    async def interaction_callback(self, interaction_id: int, token: str, payload: dict[str, Any]) -> None:
        """The initial response to an interaction (a button click): within Discord's 3 seconds."""
        # Named as discord.py names them (webhook_id, webhook_token): its rate limit buckets are
        # per interaction then, not one shared by every click.
        route = discord.http.Route(
            "POST",
            "/interactions/{webhook_id}/{webhook_token}/callback",
            webhook_id=interaction_id,
            webhook_token=token,
        )
        await self._call(self.http.request(route, json=payload))

    async def edit_interaction_answer(self, application_id: int, token: str, payload: dict[str, Any]) -> None:
        """Replace an interaction's initial response (a deferred one's "thinking…"): for 15 minutes."""
        route = discord.http.Route(
            "PATCH",
            "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
            webhook_id=application_id,
            webhook_token=token,
        )
        await self._call(self.http.request(route, json=payload))
