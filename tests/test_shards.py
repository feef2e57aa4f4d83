"""Gateway shards split over ``polly bot`` processes (``POLLY_SHARD_IDS`` with
``POLLY_SHARD_COUNT``): each process connects its own shards, and each guild's events are
handled by exactly one process, the one running the guild's shard."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from app.roles.snapshot import GuildSnapshot
from app.sandbox.builtin import default_fixture
from app.sandbox.server import Sandbox
from tests.conftest import wait_until
from tests.processes import announced

pytestmark = pytest.mark.asyncio
SHARDS = 2


@pytest_asyncio.fixture
async def sharded() -> AsyncIterator[Sandbox]:
    # Both shards IDENTIFY at once (discord.py waits 5 s between them otherwise).
    running = Sandbox(default_fixture().model_copy(update={"shards": SHARDS, "max_concurrency": SHARDS}))
    await running.start("127.0.0.1", 0)
    try:
        yield running
    finally:
        await running.stop()


def bot_env(sandbox: Sandbox, redis_url: str, data_dir: str, shard_ids: str) -> dict[str, str]:
    return {
        **os.environ,
        "POLLY_DISCORD_API_URL": sandbox.api_url,
        "POLLY_DISCORD_GATEWAY_URL": sandbox.gateway_url,
        "POLLY_DISCORD_TOKEN": sandbox.fixture.bot.token,
        "POLLY_REDIS_URL": redis_url,
        "POLLY_DATA_DIR": data_dir,
        "POLLY_SHARD_COUNT": str(SHARDS),
        "POLLY_SHARD_IDS": shard_ids,
        "POLLY_BOT_METRICS_PORT": "0",
        "POLLY_LOG_FORMAT": "json",
        "POLLY_LOG_LEVEL": "INFO",
    }


async def test_two_processes_split_the_shards_and_each_guild_has_one(
    sharded: Sandbox, redis_url: str, tmp_path: object
) -> None:
    bot = sharded.state.bot.id
    guilds = {g.id: g for g in sharded.state.guilds.values() if bot in g.members}
    assert {(guild >> 22) % SHARDS for guild in guilds} == {0, 1}, "the fixture must span both shards"
    client = aioredis.Redis.from_url(redis_url)
    renamed: dict[int, str] = {}
    data_dir = str(tmp_path)
    try:
        async with (
            announced(sys.executable, "-m", "app", "bot", env=bot_env(sharded, redis_url, data_dir, "0"),
                      line="metrics on http://") as first,
            announced(sys.executable, "-m", "app", "bot", env=bot_env(sharded, redis_url, data_dir, "1"),
                      line="metrics on http://") as second,
            httpx.AsyncClient(base_url=sharded.url) as control,
        ):  # fmt: skip

            async def both_shards_connected() -> bool:
                sessions = sharded.gateway.describe()
                return sorted(s["shard"][0] for s in sessions if s.get("shard")) == [0, 1]

            await wait_until(both_shards_connected, within=20, interval=0.1)
            for guild_id, guild in guilds.items():
                role = next(r for r in guild.roles.values() if r.id != guild_id)  # not @everyone
                renamed[guild_id] = f"Sharded {guild_id % 1000}"
                answer = await control.patch(
                    f"/_sandbox/guilds/{guild_id}/roles/{role.id}", json={"name": renamed[guild_id]}
                )
                answer.raise_for_status()

            async def all_written() -> bool:
                for guild_id, name in renamed.items():
                    raw = await client.get(f"guild_roles_ping:{{{guild_id}}}")
                    if raw is None or name not in {r["name"] for r in GuildSnapshot.from_json(raw).roles}:
                        return False
                return True

            await wait_until(all_written, within=20, interval=0.05)
            processes = (first, second)
            for running in processes:
                running.process.terminate()
            await asyncio.gather(*(running.process.wait() for running in processes))
            logs = [(await running.stderr).decode() for running in processes]
    finally:
        await client.aclose()

    handled: dict[int, list[int]] = {guild: [] for guild in guilds}
    for shard, text in enumerate(logs):
        for line in text.splitlines():
            if not line.startswith("{"):
                continue
            entry = json.loads(line)
            if entry.get("event") == "GUILD_ROLE_UPDATE" and entry["message"].startswith("Guild "):
                assert entry["shard"] == shard, entry
                handled[entry["guild"]].append(shard)
    assert handled == {guild: [(guild >> 22) % SHARDS] for guild in guilds}
