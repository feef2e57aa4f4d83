"""The door every request passes: the caller's token bucket and the cached answer, if any, in
one round trip to Redis (one script: the bucket, the caller's cached key record and the answer
share the caller's hash tag). The same script checks that the answer's guilds have not changed
since; on a Redis Cluster, where their versions live on other nodes, a second round trip does
(response_cache.fresh).

When Redis is down, requests pass unlimited: the service is degraded, not closed, and each
process still bounds its own work (fills, guilds per request, subscriptions per socket).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any

from app.cache import scripts
from app.cache.connection import CacheUnavailable
from app.cache.response_cache import fresh
from app.cache.role_cache import RoleCache

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    retry_after: float = 0.0  # seconds, when not allowed
    cached: bytes | None = None  # the cached response, when asked for and allowed


OPEN = Admission(True)


class KeyVerdict(Enum):
    MISS = "miss"  # no cached record: ask the database, cache it, ask again
    REFUSED = "refused"  # wrong secret, or revoked
    LIMITED = "limited"
    OK = "ok"


@dataclass(frozen=True, slots=True)
class KeyAdmission:
    verdict: KeyVerdict
    record: bytes | None = None  # when refused, or allowed without a cached response
    retry_after: float = 0.0
    cached: bytes | None = None


class RequestGate:
    def __init__(self, cache: RoleCache, *, rate: float, burst: int) -> None:
        self._cache = cache
        self.rate = rate
        self.burst = burst
        self._take = cache.redis.register_script(scripts.TAKE_TOKEN)
        self._admit_key = cache.redis.register_script(scripts.ADMIT_KEY)
        self._charge = cache.redis.register_script(scripts.CHARGE)
        # Where the scripts find a guild's version, to check a cached answer in the same round
        # trip; on a cluster they cannot (other nodes hold them): the answer is checked after.
        self._checked = not cache.sharded
        self._versions = cache.keys.guild_version_parts() if self._checked else ("", "")

    async def admit(self, bucket: str, response_name: str | None = None) -> Admission:
        """Take a token from ``bucket``; with a name (``keys.response_name`` of the same
        bucket), also fetch that cached response."""
        keys = [self._cache.keys.rate_limit(bucket)]
        if response_name is not None:
            keys.append(self._cache.keys.response(response_name))

        async def run() -> list[Any]:
            return list(await self._take(keys=keys, args=[self.rate, self.burst, 1, *self._versions]))

        try:
            results: list[Any] | None = await self._cache.breaker.call(run)
        except CacheUnavailable:
            results = None
        _stop_if_cancelled()
        if results is None:
            return OPEN
        allowed, retry_ms, cached = results
        if not allowed:
            return Admission(False, retry_after=int(retry_ms) / 1000)
        # Lua's false comes back as None.
        entry = cached if isinstance(cached, bytes) else None
        answer = await fresh(self._cache, entry, checked=self._checked)
        _stop_if_cancelled()
        return Admission(True, cached=answer)

    async def charge(self, bucket: str, tokens: int) -> None:
        """Take ``tokens`` more from ``bucket`` for work already done, even into debt. While
        Redis is down nothing is charged, as nothing is limited."""
        keys = [self._cache.keys.rate_limit(bucket)]

        async def run() -> Any:
            return await self._charge(keys=keys, args=[self.rate, self.burst, tokens])

        try:
            await self._cache.breaker.call(run)
        except CacheUnavailable:
            log.debug("Redis is unavailable; %s tokens of %s were not charged.", tokens, bucket)

    async def admit_key(self, key_id: str, secret_hash: str, response_name: str | None) -> KeyAdmission:
        """An API key's request: the key checked against its cached record, its bucket charged,
        and the cached response fetched, in one round trip. Raises CacheUnavailable when Redis
        cannot be asked (the caller checks the key against the database instead)."""
        keys = [self._cache.keys.api_key(key_id), self._cache.keys.rate_limit(f"key:{key_id}")]
        if response_name is not None:
            keys.append(self._cache.keys.response(response_name))

        async def run() -> list[Any]:
            arguments: list[str | float] = [secret_hash, self.rate, self.burst, 1, *self._versions]
            return list(await self._admit_key(keys=keys, args=arguments))

        try:
            results = await self._cache.breaker.call(run)
        finally:
            _stop_if_cancelled()
        verdict = KeyVerdict(results[0].decode() if isinstance(results[0], bytes) else results[0])
        if verdict is KeyVerdict.LIMITED:
            return KeyAdmission(verdict, retry_after=int(results[1]) / 1000)
        if verdict is KeyVerdict.OK:
            answer = await fresh(self._cache, results[2] or None, checked=self._checked)
            _stop_if_cancelled()
            return KeyAdmission(verdict, record=results[1] or None, cached=answer)
        return KeyAdmission(verdict, record=results[1] if len(results) > 1 else None)


def _stop_if_cancelled() -> None:
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        # redis-py can swallow a cancellation that lands while it talks to Redis; the caller
        # (a client that went away) asked to stop, so stop.
        raise asyncio.CancelledError
