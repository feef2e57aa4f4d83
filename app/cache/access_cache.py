"""Short-lived copies of who callers are: API key records and signed-in users' guilds.

The database and Discord are the truth; these copies spare them a query per request. Every
entry is small, has a TTL, and is dropped at once when a key is revoked or a user logs out.
When Redis is down, reads miss and writes are skipped: callers go to the truth instead.
"""

from __future__ import annotations

import json
import logging
from typing import cast

from app.cache.channels import publish
from app.cache.connection import CacheUnavailable
from app.cache.role_cache import RoleCache

log = logging.getLogger(__name__)


def access_change(kind: str, caller_id: str) -> str:
    """The announcement that a caller's access changed: ``kind`` USER or API_KEY, and its id."""
    return json.dumps({"kind": kind, "id": caller_id})


def read_access_change(raw: bytes | str) -> tuple[str, str]:
    """(kind, id) of an announcement; raises ValueError for anything else."""
    fields = json.loads(raw)
    if not isinstance(fields, dict) or not all(isinstance(fields.get(k), str) for k in ("kind", "id")):
        raise ValueError("an access announcement names a kind and an id")
    return fields["kind"], fields["id"]


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

    async def announce_change(self, kind: str, caller_id: str) -> None:
        """Tell every API process that this caller's access changed, so that its open connections
        are checked again now. A Redis that cannot be told is logged: the periodic recheck still
        comes."""
        message = access_change(kind, caller_id)
        try:
            await self._cache.breaker.call(
                lambda: publish(self._cache.redis, self.keys.access_changes(), message)
            )
        except CacheUnavailable as error:
            log.warning("Could not announce an access change to the other processes (%s).", error)
