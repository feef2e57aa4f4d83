"""Poll results in Redis: one versioned document per poll, replaced by every vote, read by the
per-request loader in one MGET (the database fills a miss from the counts kept on the poll's
row, never by counting ballots)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import orjson

from app.cache import scripts
from app.cache.connection import CacheUnavailable
from app.cache.role_cache import RoleCache
from app.storage.ballots import Results

log = logging.getLogger(__name__)


def encode(results: Results) -> bytes:
    return orjson.dumps({"counts": list(results.counts), "voters": results.voters})


def decode(poll_id: int, raw: bytes) -> Results | None:
    version, _, document = raw.partition(b":")
    try:
        parsed = orjson.loads(document)
        return Results(poll_id, int(version), tuple(int(c) for c in parsed["counts"]), int(parsed["voters"]))
    except (ValueError, KeyError, TypeError):
        log.warning("The cached results of poll %s are unreadable; reading the database.", poll_id)
        return None


class PollResultsCache:
    def __init__(self, cache: RoleCache, *, ttl: int) -> None:
        self._cache = cache
        self.ttl = ttl
        self._put = cache.redis.register_script(scripts.PUT_IF_NEWER)

    async def get_many(self, poll_ids: Sequence[int]) -> dict[int, Results]:
        """The cached results among ``poll_ids``; none while Redis is down."""
        if not poll_ids:
            return {}
        keys = [self._cache.keys.poll_results(poll_id) for poll_id in poll_ids]
        try:
            values = await self._cache.mget(keys)
        except CacheUnavailable:
            return {}
        found = {}
        for poll_id, raw in zip(poll_ids, values, strict=True):
            results = (
                None if raw is None else decode(poll_id, raw if isinstance(raw, bytes) else raw.encode())
            )
            if results is not None:
                found[poll_id] = results
        return found

    async def put(self, results: Results) -> None:
        """Keep ``results`` unless newer ones are kept already; nothing while Redis is down."""
        key = self._cache.keys.poll_results(results.poll_id)

        async def run() -> object:
            return await self._put(keys=[key], args=[results.version, encode(results), self.ttl])

        try:
            await self._cache.breaker.call(run)
        except CacheUnavailable:
            log.debug("Redis is down; poll %s's results are read from the database.", results.poll_id)
