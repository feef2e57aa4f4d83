"""``/healthz`` (the process answers) and ``/readyz`` (what it can reach, and how well)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from app.cache.connection import CacheUnavailable
from app.discord.client import DiscordRestError


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    services = request.app.state.services
    redis_state: dict[str, Any]
    started = time.perf_counter()
    try:
        async with asyncio.timeout(1.0):
            await services.role_cache.ping()
        redis_state = {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
    except (CacheUnavailable, TimeoutError) as error:
        redis_state = {"ok": False, "error": str(error) or "Redis did not answer within 1s."}
    discord = services.discord
    if discord.should_probe():
        # Discord was failing: see whether it is back (one cheap call, at most every 5 s).
        with contextlib.suppress(DiscordRestError, RuntimeError):
            await discord.ensure_open()
            await discord.gateway_bot()
    discord_state: dict[str, Any] = {"ok": discord.reachable, "api_url": discord.api_url}
    if discord.last_failure is not None and not discord.reachable:
        discord_state["error"] = discord.last_failure[1]
    elif discord.last_success is None:
        discord_state["error"] = "No call has reached Discord yet."

    if redis_state["ok"] and discord_state["ok"]:
        status, code = "ready", 200
    elif redis_state["ok"] or discord_state["ok"]:
        # Still answering: from Redis while Discord is away, or from Discord while Redis is.
        status, code = "degraded", 200
    else:
        status, code = "unavailable", 503
    return JSONResponse(
        {"status": status, "degraded": status != "ready", "redis": redis_state, "discord": discord_state},
        status_code=code,
    )
