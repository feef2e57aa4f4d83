"""Discord's rate limits shared through Redis by several processes' schedulers."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from app.cache.connection import Breaker
from app.cache.discord_budget import DiscordBudget, Limit
from app.cache.keys import CacheKeys
from app.cache.role_cache import RoleCache
from tests.conftest import wait_until

pytestmark = pytest.mark.asyncio


async def test_two_processes_together_take_no_more_than_the_limit(redis_url: str) -> None:
    clients = [aioredis.Redis.from_url(redis_url), aioredis.Redis.from_url(redis_url)]
    budgets = [
        DiscordBudget(
            RoleCache(c, keys=CacheKeys(), breaker=Breaker(), ttl=60, last_known_ttl=60, negative_ttl=60)
        )
        for c in clients
    ]
    limits = (Limit("global", 50, 1.0), Limit("channel:1:post", 5, 60.0))
    sends = [asyncio.create_task(budgets[i % 2].spend(*limits)) for i in range(12)]
    try:

        async def five_sent() -> bool:
            return sum(task.done() for task in sends) >= 5

        await wait_until(five_sent, within=10)
        # The rest wait for the channel's window to pass: a minute, far past this test.
        assert sum(task.done() for task in sends) == 5
        assert await clients[0].zcard("discord_budget:{budget}:channel:1:post") == 5
        assert await clients[0].zcard("discord_budget:{budget}:global") == 5
    finally:
        for task in sends:
            task.cancel()
        await asyncio.gather(*sends, return_exceptions=True)
        for client in clients:
            await client.aclose()


async def test_while_redis_is_down_nothing_waits(redis_url: str) -> None:
    client = aioredis.Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.5)
    budget = DiscordBudget(RoleCache(client, keys=CacheKeys(), breaker=Breaker(), ttl=60, last_known_ttl=60,
                                     negative_ttl=60))  # fmt: skip
    try:
        await budget.spend(Limit("global", 1, 60.0))
        await budget.spend(Limit("global", 1, 60.0))  # not counted, so not refused
    finally:
        await client.aclose()
    assert budget.waited == 0
