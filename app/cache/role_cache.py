"""The role cache: the origin design's Redis contract, with versioned writes and batch reads.

Values are JSON documents the roles service defines; this module only stores them, keeps
their TTLs, and keeps writes ordered by each guild's version. Method names follow the origin
design (``cache_guild_roles_for_ping`` and friends).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from app.cache import scripts
from app.cache.channels import Channels
from app.cache.connection import Breaker, CacheUnavailable, RedisClient, is_cluster
from app.cache.keys import CacheKeys
from app.telemetry.metrics import ROLE_CACHE_READS, ROLE_CACHE_WRITES

log = logging.getLogger(__name__)

Document = dict[str, Any]

# A guild's dependents change between reading them and a write only when a validation is
# written at that very moment; more changes in a row than this mean something else is wrong.
DEPENDENTS_ATTEMPTS = 10


@dataclass
class CacheCounters:
    hits: int = 0
    misses: int = 0
    writes: int = 0
    writes_refused: int = 0  # carried an older version than Redis holds
    invalidations: int = 0
    last_known_served: int = 0
    unavailable: int = 0

    def as_dict(self) -> dict[str, int | float]:
        looked_up = self.hits + self.misses
        return {
            **self.__dict__,
            "hit_rate": round(self.hits / looked_up, 4) if looked_up else 0.0,
        }


@dataclass(frozen=True)
class EventFields:
    """What an event says besides its guild, version and stream id."""

    kind: str
    role_id: str | None
    channel_id: str | None
    at: str


@dataclass
class CachedReads:
    """What one MGET found: raw guild documents and role validations (``None`` for a miss)."""

    guilds: dict[int, bytes | None] = field(default_factory=dict)
    validations: dict[tuple[int, int], bytes | None] = field(default_factory=dict)


class RoleCache:
    def __init__(
        self,
        client: RedisClient,
        *,
        keys: CacheKeys,
        breaker: Breaker,
        ttl: int,
        last_known_ttl: int,
        negative_ttl: int,
    ) -> None:
        self.redis = client
        self.keys = keys
        self.breaker = breaker
        self.ttl = ttl
        self.last_known_ttl = last_known_ttl
        self.negative_ttl = negative_ttl
        self.counters = CacheCounters()
        self.sharded = is_cluster(client)
        self._fill_guild = client.register_script(scripts.FILL_GUILD)
        self._write_dependents = client.register_script(scripts.WRITE_DEPENDENTS)
        self._invalidate = client.register_script(scripts.INVALIDATE_GUILD)
        self._apply_change = client.register_script(self.announcing(scripts.APPLY_CHANGE))
        self._refresh = client.register_script(scripts.REFRESH_GUILD)

    def announcing(self, script: str) -> str:
        """``script`` with the PUBLISH this Redis takes (SPUBLISH on a cluster)."""
        return scripts.announcing(script, sharded=self.sharded)

    def channel(self, stream: str) -> str:
        """The pub/sub channel announcing the entries of ``stream``."""
        return self.keys.announcements(stream, sharded=self.sharded)

    # -- the origin design's methods -----------------------------------------------------------

    async def cache_guild_roles_for_ping(self, guild_id: int, data: Document, *, version: int) -> bool:
        """Store a guild's role data read at ``version``; False when the guild was written since."""
        payload = orjson.dumps({key: value for key, value in data.items() if key != "version"})
        return bool(await self.write_guild(guild_id, payload, read_at=version, ttl=self.ttl))

    async def get_cached_guild_roles_for_ping(self, guild_id: int) -> Document | None:
        reads = await self.read([guild_id], [])
        raw = reads.guilds[guild_id]
        return None if raw is None else _load(raw)

    async def cache_role_validation(
        self, guild_id: int, role_id: int, result: Document, *, version: int
    ) -> bool:
        return await self.cache_role_validations(guild_id, {role_id: result}, version=version)

    async def get_cached_role_validation(self, guild_id: int, role_id: int) -> Document | None:
        reads = await self.read([], [(guild_id, role_id)])
        raw = reads.validations[(guild_id, role_id)]
        return None if raw is None else _load(raw)

    def _guild_keys(self, guild_id: int) -> list[str]:
        """The keys every script that writes a guild's data takes, in the order they take them."""
        return [
            self.keys.guild_roles(guild_id),
            self.keys.last_known_guild_roles(guild_id),
            self.keys.guild_version(guild_id),
            self.keys.guild_dependents(guild_id),
        ]

    async def _versioned(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        """Run a script that may drop the guild's dependents (``keys`` being the guild's own),
        passing it the dependents as they are now (see scripts.py)."""
        dependents: list[Any] = []
        for _ in range(DEPENDENTS_ATTEMPTS):
            listed = [*keys, *dependents]
            result = await self.breaker.call(functools.partial(script, keys=listed, args=args))
            if not (isinstance(result, list) and result and result[0] == b"dependents"):
                return result
            dependents = result[1:]
        raise RuntimeError(f"The dependents of {keys[0]} kept changing during {DEPENDENTS_ATTEMPTS} writes.")

    async def invalidate_guild_roles_cache(self, guild_id: int) -> int:
        """Drop a guild's role data and everything computed from it; returns the new version."""
        keys = self._guild_keys(guild_id)
        version = int(await self._versioned(self._invalidate, keys, []))
        self.counters.invalidations += 1
        log.info("Invalidated the role cache of guild %s (now version %s).", guild_id, version)
        return version

    async def warm_guild_cache(self, guild_id: int, data: Document) -> int:
        """Write a guild's role data as the newest version (Discord's own gateway data is
        fresher than anything cached), without an event; returns that version."""
        payload = orjson.dumps({key: value for key, value in data.items() if key != "version"})
        version, _ = await self.apply_change(guild_id, payload, None, stream_length=1)
        return version

    async def get_cache_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = {"counters": self.counters.as_dict(), "ttl": self.ttl}
        try:
            client = self.redis
            if isinstance(client, RedisCluster):
                # Summed over the masters (a cluster asks one node at random by default).
                masters = RedisCluster.PRIMARIES
                size = await self.breaker.call(lambda: client.dbsize(target_nodes=masters))
                by_node = await self.breaker.call(lambda: client.info("memory", target_nodes=masters))
                info = {"used_memory": sum(node.get("used_memory", 0) for node in by_node.values())}
            else:
                info = await self.breaker.call(lambda: client.info("memory"))
                size = await self.breaker.call(client.dbsize)
            stats["redis"] = {"available": True, "keys": size, "used_memory": info.get("used_memory")}
        except CacheUnavailable as error:
            stats["redis"] = {"available": False, "error": str(error)}
        return stats

    # -- batch reads and versioned writes -----------------------------------------------------

    async def read(self, guild_ids: Sequence[int], validations: Sequence[tuple[int, int]]) -> CachedReads:
        """Guild documents and role validations in one MGET."""
        keys = [self.keys.guild_roles(g) for g in guild_ids]
        keys += [self.keys.role_validation(g, r) for g, r in validations]
        if not keys:
            return CachedReads()
        try:
            values = await self.mget(keys)
        except CacheUnavailable:
            self.counters.unavailable += 1
            raise
        reads = CachedReads(
            guilds=dict(zip(guild_ids, values[: len(guild_ids)], strict=True)),
            validations=dict(zip(validations, values[len(guild_ids) :], strict=True)),
        )
        hits = sum(value is not None for value in values)
        self.counters.hits += hits
        self.counters.misses += len(values) - hits
        ROLE_CACHE_READS.labels("hit").inc(hits)
        ROLE_CACHE_READS.labels("miss").inc(len(values) - hits)
        if log.isEnabledFor(logging.DEBUG):
            for key, value in zip(keys, values, strict=True):
                log.debug("Cache %s: %s", "hit" if value is not None else "miss", key)
        return reads

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of ``keys``: one MGET, or on a cluster one per slot (in parallel)."""
        if isinstance(self.redis, RedisCluster):
            cluster = self.redis
            return cast(list[bytes | None], await self.breaker.call(lambda: cluster.mget_nonatomic(keys)))
        client = self.redis
        return cast(list[bytes | None], await self.breaker.call(lambda: client.mget(keys)))

    async def version(self, guild_id: int) -> int:
        raw = await self.breaker.call(lambda: self.redis.get(self.keys.guild_version(guild_id)))
        return int(raw or 0)

    async def guild_and_version(self, guild_id: int) -> tuple[bytes | None, int]:
        """The guild's cached data and its current version, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self.keys.guild_roles(guild_id))
        pipe.get(self.keys.guild_version(guild_id))
        raw, version = await self.breaker.call(pipe.execute)
        return raw, int(version or 0)

    async def write_guild(
        self, guild_id: int, payload: bytes, *, read_at: int, ttl: int, last_known: bool = True
    ) -> int:
        """Write a fill's data (``payload`` without its version), read from Discord after the
        guild was at version ``read_at``. Returns the new version, or 0 when the guild was
        written since (its data may then be newer than ours)."""
        keys = self._guild_keys(guild_id)
        keep = self.ttl + self.last_known_ttl if last_known else 0
        version = int(await self._versioned(self._fill_guild, keys, [payload, ttl, keep, read_at]))
        if version:
            self.counters.writes += 1
            ROLE_CACHE_WRITES.labels("written").inc()
        else:
            self.counters.writes_refused += 1
            ROLE_CACHE_WRITES.labels("refused").inc()
            log.debug(
                "Refused a fill of guild %s read at version %s: it was written since.", guild_id, read_at
            )
        return version

    async def write_absent(self, guild_id: int, payload: bytes, *, read_at: int) -> int:
        """Remember briefly that a guild cannot be read (unknown, or the bot is not in it)."""
        return await self.write_guild(
            guild_id, payload, read_at=read_at, ttl=self.negative_ttl, last_known=False
        )

    async def cache_role_validations(
        self, guild_id: int, results: Mapping[int, Document], *, version: int
    ) -> bool:
        entries = {
            self.keys.role_validation(guild_id, role_id): orjson.dumps(r) for role_id, r in results.items()
        }
        return await self.write_dependents(guild_id, version, entries, ttl=self.ttl)

    async def write_dependents(
        self, guild_id: int, version: int, entries: Mapping[str, bytes], *, ttl: int
    ) -> bool:
        """Write ``entries`` (keys of the guild) computed from the guild at ``version``, unless
        it changed since; they are dropped with the guild's next version."""
        if not entries:
            return True
        keys = [self.keys.guild_version(guild_id), self.keys.guild_dependents(guild_id), *entries]
        args: list[Any] = [ttl, version, *entries.values()]
        written = bool(await self.breaker.call(lambda: self._write_dependents(keys=keys, args=args)))
        if not written:
            self.counters.writes_refused += 1
        ROLE_CACHE_WRITES.labels("written" if written else "refused").inc()
        return written

    async def apply_change(
        self, guild_id: int, payload: bytes, event: EventFields | None, *, stream_length: int
    ) -> tuple[int, str | None]:
        """Write a guild's data as Discord's newest (a new version) and append ``event`` to its
        stream, announcing it on pub/sub, atomically. ``payload`` is the data without its
        version. Returns the version and the event's stream id."""
        stream = self.keys.guild_events(guild_id)
        keys = [*self._guild_keys(guild_id), stream, self.channel(stream)]
        args: list[Any] = [
            payload,
            self.ttl,
            self.ttl + self.last_known_ttl,
            event.kind if event else "",
            event.role_id or "" if event else "",
            event.channel_id or "" if event else "",
            event.at if event else "",
            stream_length,
            str(guild_id),
        ]
        version, event_id = await self._versioned(self._apply_change, keys, args)
        self.counters.writes += 1
        ROLE_CACHE_WRITES.labels("written").inc()
        return int(version), (event_id.decode() if isinstance(event_id, bytes) else None)

    async def refresh(self, guild_id: int, payload: bytes) -> int:
        """Keep a guild's data from expiring; 0 if it was there, else the version it now has."""
        keys = self._guild_keys(guild_id)
        args: list[Any] = [payload, self.ttl, self.ttl + self.last_known_ttl]
        return int(await self._versioned(self._refresh, keys, args))

    async def ping(self) -> None:
        """Raises CacheUnavailable unless Redis answers."""
        await self.breaker.call(self.redis.ping)

    def channels(self) -> Channels:
        """A pub/sub connection for announcement channels (app/live/)."""
        return Channels(self.redis)

    async def add_bot_guild(self, guild_id: int) -> None:
        await self.breaker.call(lambda: self.redis.sadd(self.keys.bot_guilds(), guild_id))

    async def remove_bot_guild(self, guild_id: int) -> None:
        await self.breaker.call(lambda: self.redis.srem(self.keys.bot_guilds(), guild_id))

    async def bot_guild_ids(self) -> list[int]:
        members = await self.breaker.call(lambda: self.redis.smembers(self.keys.bot_guilds()))
        return sorted(int(member) for member in members)

    async def last_known(self, guild_id: int) -> bytes | None:
        key = self.keys.last_known_guild_roles(guild_id)
        return cast(bytes | None, await self.breaker.call(lambda: self.redis.get(key)))

    async def drop_guild(self, guild_id: int) -> None:
        """Forget a guild entirely (the bot left it), last-known copy included."""
        await self.invalidate_guild_roles_cache(guild_id)
        await self.breaker.call(lambda: self.redis.delete(self.keys.last_known_guild_roles(guild_id)))


def _load(raw: bytes) -> Document:
    document: Document = orjson.loads(raw)
    return document
