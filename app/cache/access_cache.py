"""Short-lived copies of who callers are: API key records and signed-in users' guilds.

The database and Discord are the truth; these copies spare them a query per request. Every
entry is small, has a TTL, and is dropped at once when a key is revoked or a user logs out.
When Redis is down, reads miss and writes are skipped: callers go to the truth instead.
"""

from __future__ import annotations

from typing import cast

from app.cache.connection import CacheUnavailable
from app.cache.role_cache import RoleCache


class AccessCache:
    def __init__(self, cache: RoleCache) -> None:
        self._cache = cache
        self.keys = cache.keys

    async def _get(self, key: str) -> bytes | None:
        try:
            return cast(bytes | None, await self._cache.breaker.call(lambda: self._cache.redis.get(key)))
        except CacheUnavailable:
            return None

    async def _put(self, key: str, value: bytes, ttl: float) -> None:
        milliseconds = max(1, int(ttl * 1000))
        try:
            await self._cache.breaker.call(lambda: self._cache.redis.set(key, value, px=milliseconds))
        except CacheUnavailable:
            return  # the next request asks the truth again

    async def _drop(self, key: str) -> None:
        try:
            await self._cache.breaker.call(lambda: self._cache.redis.delete(key))
        except CacheUnavailable:
            return  # it expires on its own

    async def api_key(self, key_id: str) -> bytes | None:
        key = self.keys.api_key(key_id)
        try:
            record = await self._cache.breaker.call(lambda: self._cache.redis.hget(key, "record"))
        except CacheUnavailable:
            return None
        return cast(bytes | None, record)

    async def put_api_key(
        self, key_id: str, record: bytes, *, secret_hash: str, revoked: bool, ttl: float
    ) -> None:
        """A hash, so that Redis itself can check a secret and a revocation (RequestGate.admit_key)."""
        key = self.keys.api_key(key_id)
        fields: list[bytes | str] = [
            "record", record, "secret_hash", secret_hash, "revoked", "1" if revoked else "0",
        ]  # fmt: skip

        async def write() -> None:
            async with self._cache.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, items=fields)
                pipe.pexpire(key, max(1, int(ttl * 1000)))
                await pipe.execute()

        try:
            await self._cache.breaker.call(write)
        except CacheUnavailable:
            return

    async def viewer(self, session_hash: str) -> bytes | None:
        return await self._get(self.keys.viewer(session_hash))

    async def put_viewer(self, session_hash: str, viewer: bytes, ttl: float) -> None:
        await self._put(self.keys.viewer(session_hash), viewer, ttl)

    async def drop_viewer(self, session_hash: str) -> None:
        await self._drop(self.keys.viewer(session_hash))
