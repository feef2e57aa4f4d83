"""Discord's rate limits for a bot that runs as several processes: each asks Redis before a
call, so together they stay under what Discord allows and never earn a 429.

discord.py keeps its own buckets, but per process: two schedulers posting to one channel
would each believe they have the whole budget. Only what a scheduler sends in bulk (poll
messages) goes through here.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass

from app.cache import scripts
from app.cache.connection import CacheUnavailable
from app.cache.role_cache import RoleCache

log = logging.getLogger(__name__)

# Added to every window: a request decided at the window's edge still arrives after it.
MARGIN_MS = 100


@dataclass(frozen=True)
class Limit:
    scope: str
    requests: int
    seconds: float


class DiscordBudget:
    def __init__(self, cache: RoleCache) -> None:
        self._cache = cache
        self._spend = cache.redis.register_script(scripts.SPEND_DISCORD_BUDGET)
        self.waited = 0.0  # seconds spent waiting, for benchmarks and logs

    async def spend(self, *limits: Limit, within: float | None = None) -> float | None:
        """Wait until one more request fits every limit, and count it; None then. When the
        wait would end more than ``within`` seconds from now, nothing is counted and the wait
        it would take is returned instead. While Redis is down nothing is counted: discord.py's
        own buckets are the only guard then."""
        keys = [self._cache.keys.discord_budget(limit.scope) for limit in limits]
        args: list[int | str] = []
        for limit in limits:
            args += [limit.requests, int(limit.seconds * 1000) + MARGIN_MS]
        args.append(secrets.token_hex(8))
        deadline = None if within is None else time.monotonic() + within
        while True:
            try:
                wait_ms = int(await self._cache.breaker.call(lambda: self._spend(keys=keys, args=args)))
            except CacheUnavailable as error:
                log.debug("Discord's rate limits are not shared while Redis is down: %s", error)
                return None
            if wait_ms <= 0:
                return None
            wait = wait_ms / 1000
            if deadline is not None and time.monotonic() + wait > deadline:
                return wait
            self.waited += wait
            await asyncio.sleep(wait)
