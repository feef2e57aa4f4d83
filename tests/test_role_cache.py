"""The role cache's contract (the origin design's methods) and its versioned writes, on a real Redis."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from app.cache.connection import Breaker, open_redis
from app.cache.keys import CacheKeys
from app.cache.role_cache import RoleCache
from app.sandbox.fixture import Fixture
from tests.conftest import RunningApi, guild_id, role_id

GUILD = 4242


@pytest_asyncio.fixture
async def cache(redis_url: str) -> AsyncIterator[RoleCache]:
    client = open_redis(redis_url)
    yield RoleCache(
        client, keys=CacheKeys("t:"), breaker=Breaker(), ttl=1800, last_known_ttl=600, negative_ttl=60
    )
    await client.aclose()


async def test_the_origin_designs_methods(cache: RoleCache) -> None:
    data = {"roles": [{"id": "1", "name": "A"}]}
    assert await cache.cache_guild_roles_for_ping(GUILD, data, version=0)
    # Each write takes a new version, stored as the document's first key.
    assert await cache.get_cached_guild_roles_for_ping(GUILD) == {"version": 1, **data}
    assert await cache.cache_role_validation(GUILD, 1, {"valid": True}, version=1)
    assert await cache.get_cached_role_validation(GUILD, 1) == {"valid": True}
    assert await cache.redis.ttl(f"t:guild_roles_ping:{{{GUILD}}}") == 1800
    assert await cache.redis.ttl(f"t:role_validation:{{{GUILD}}}:1") == 1800

    version = await cache.invalidate_guild_roles_cache(GUILD)
    assert version == 2
    assert await cache.get_cached_guild_roles_for_ping(GUILD) is None
    assert await cache.get_cached_role_validation(GUILD, 1) is None  # dropped with its guild
    assert await cache.last_known(GUILD) is not None  # kept for outages

    warmed = await cache.warm_guild_cache(GUILD, {"roles": []})
    assert warmed == 3 and await cache.get_cached_guild_roles_for_ping(GUILD) == {"version": 3, "roles": []}

    stats = await cache.get_cache_stats()
    assert stats["counters"]["hits"] >= 3 and stats["counters"]["misses"] >= 2
    assert stats["counters"]["invalidations"] == 1
    assert stats["redis"]["available"] is True and stats["redis"]["keys"] > 0


async def test_a_refill_drops_what_was_computed_from_the_data_it_replaces(cache: RoleCache) -> None:
    read_at = await cache.version(GUILD)
    assert await cache.cache_guild_roles_for_ping(GUILD, {"roles": ["old"]}, version=read_at)
    assert await cache.cache_role_validation(GUILD, 1, {"valid": True}, version=read_at + 1)
    await cache.redis.delete(f"t:guild_roles_ping:{{{GUILD}}}")  # as if the TTL had passed
    assert await cache.cache_guild_roles_for_ping(GUILD, {"roles": ["new"]}, version=read_at + 1)
    assert await cache.get_cached_role_validation(GUILD, 1) is None


async def test_a_write_read_at_an_older_version_never_wins(cache: RoleCache) -> None:
    read_at = await cache.version(GUILD)  # a fill starts reading Discord...
    newer = await cache.warm_guild_cache(GUILD, {"from": "gateway"})  # ...an event lands meanwhile
    assert newer > read_at
    assert not await cache.cache_guild_roles_for_ping(GUILD, {"from": "slow fill"}, version=read_at)
    assert await cache.get_cached_guild_roles_for_ping(GUILD) == {"version": newer, "from": "gateway"}
    # A fill that read the current version still wins, and takes the next one.
    assert await cache.cache_guild_roles_for_ping(GUILD, {"from": "fill"}, version=newer)
    assert (await cache.get_cached_guild_roles_for_ping(GUILD) or {})["version"] == newer + 1
    assert not await cache.cache_role_validation(GUILD, 1, {"stale": True}, version=read_at)
    assert await cache.get_cached_role_validation(GUILD, 1) is None
    assert cache.counters.writes_refused == 2


async def test_invalidation_drops_the_guilds_cached_responses_only(api: RunningApi, fixture: Fixture) -> None:
    quiet, hq = guild_id(fixture, "Quiet Corner"), guild_id(fixture, "Polly HQ")
    query = "query($g: ID!) { pingableRoles(guildId: $g) { name } }"
    for guild in (quiet, hq):
        await api.query(query, {"g": str(guild)})
    api.sandbox.stats.reset()

    await api.services.role_cache.invalidate_guild_roles_cache(quiet)
    await api.query(query, {"g": str(hq)})
    assert api.rest_calls() == 0  # still answered from the cache
    await api.query(query, {"g": str(quiet)})
    assert api.rest_calls() == 3  # refilled

    # A change in Discord shows once the guild is invalidated.
    helpers = role_id(fixture, "Quiet Corner", "Helpers")
    api.sandbox.state.guilds[quiet].roles[helpers].mentionable = False
    await api.services.role_cache.invalidate_guild_roles_cache(quiet)
    _, body = await api.query(query, {"g": str(quiet)})
    assert body["data"]["pingableRoles"] == [{"name": "Artists"}]


async def test_hits_and_misses_log_at_debug_invalidations_at_info(
    cache: RoleCache, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="app.cache")
    await cache.get_cached_guild_roles_for_ping(GUILD)
    await cache.cache_guild_roles_for_ping(GUILD, {}, version=0)
    await cache.get_cached_guild_roles_for_ping(GUILD)
    await cache.invalidate_guild_roles_cache(GUILD)
    records = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert (logging.DEBUG, f"Cache miss: t:guild_roles_ping:{{{GUILD}}}") in records
    assert (logging.DEBUG, f"Cache hit: t:guild_roles_ping:{{{GUILD}}}") in records
    assert any(level == logging.INFO and "Invalidated" in message for level, message in records)
