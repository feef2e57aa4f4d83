"""The cross-process half of single-flight: one process fetches a guild, the others wait.

The holder of ``fill_lock:{guild_id}`` fetches the guild from Discord and writes it; the
others watch the guild's key until the data appears, or until the lock is gone without it
(the holder failed), when they may take the lock themselves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import cast

from redis.exceptions import LockError

from app.cache.connection import CacheUnavailable
from app.cache.role_cache import RoleCache

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.02


class FillLock:
    def __init__(self, cache: RoleCache, guild_id: int, *, timeout: float) -> None:
        self._cache = cache
        self._guild_id = guild_id
        # Expires on its own, so a holder that dies cannot block the guild for long.
        self._lock = cache.redis.lock(cache.keys.fill_lock(guild_id), timeout=timeout, blocking=False)

    async def acquire(self) -> bool:
        """Take the lock if nobody holds it (raises CacheUnavailable when Redis is down)."""
        return bool(await self._cache.breaker.call(self._lock.acquire))

    async def release(self) -> None:
        try:
            await self._cache.breaker.call(self._lock.release)
        except (LockError, CacheUnavailable) as error:
            # The lock expires on its own; a failed release only delays the next fill.
            log.debug("Could not release the fill lock of guild %s: %s", self._guild_id, error)

    async def wait_for_data(self, deadline: float) -> bytes | None:
        """The guild's data once the holder wrote it; None when the holder finished without
        writing, or at ``deadline`` (a ``time.monotonic()`` value)."""
        key = self._cache.keys.guild_roles(self._guild_id)
        while time.monotonic() < deadline:
            await asyncio.sleep(POLL_INTERVAL)
            raw = await self._cache.breaker.call(lambda: self._cache.redis.get(key))
            if raw is not None:
                return cast(bytes, raw)
            if not await self._cache.breaker.call(self._lock.locked):
                return None
        return None
