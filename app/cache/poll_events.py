"""Poll changes in Redis: each guild's poll stream (replayed to subscribers who reconnect with
``since``) and its pub/sub channel (live), written together by one script."""

from __future__ import annotations

from datetime import UTC, datetime

from app.cache import scripts
from app.cache.role_cache import RoleCache


class PollEventLog:
    def __init__(self, cache: RoleCache, *, stream_length: int = 1000) -> None:
        self._cache = cache
        self.stream_length = stream_length
        self._append = cache.redis.register_script(cache.announcing(scripts.APPEND_POLL_EVENT))

    async def append(self, guild_id: int, poll_id: int, kind: str, version: int) -> str:
        """The event's id; raises CacheUnavailable while Redis is down."""
        key = self._cache.keys.poll_events(guild_id)
        args: list[str | int] = [
            str(guild_id), str(poll_id), kind, version, datetime.now(UTC).isoformat(), self.stream_length,
        ]  # fmt: skip
        keys = [key, self._cache.channel(key)]
        raw = await self._cache.breaker.call(lambda: self._append(keys=keys, args=args))
        return raw.decode() if isinstance(raw, bytes) else str(raw)
