"""`polly api` stops on SIGTERM with thousands of subscriptions open: exit 0, no error logged."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import redis.asyncio as aioredis

from app.sandbox.fixture import Fixture
from app.sandbox.server import Sandbox
from app.settings import Settings
from tests.conftest import REPO, TEST_SECRET_KEY, RunningBot, SandboxHttp, create_key, guild_id
from tests.processes import announced

SUBSCRIBERS = 5000
CLIENT_PROCESSES = 2
SUBSCRIPTION = "subscription($g: ID!) { guildRolesChanged(guildId: $g) { kind roleId } }"


async def redis_clients(url: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        return len(await client.client_list())
    finally:
        await client.aclose()


async def test_sigterm_with_5000_subscriptions_closes_them_and_exits_0(
    gateway_bot: RunningBot,
    sandbox: Sandbox,
    http: SandboxHttp,
    fixture: Fixture,
    redis_url: str,
    tmp_path: Path,
) -> None:
    playground = guild_id(fixture, "Polly Playground")
    settings = Settings(data_dir=tmp_path, secret_key=TEST_SECRET_KEY)
    token = await create_key(settings, [playground], ["roles:read"])
    before = await redis_clients(redis_url)
    env = {
        **os.environ,
        "POLLY_DISCORD_API_URL": sandbox.api_url,
        "POLLY_DISCORD_TOKEN": fixture.bot.token,
        "POLLY_REDIS_URL": redis_url,
        "POLLY_SECRET_KEY": TEST_SECRET_KEY,
        "POLLY_DATA_DIR": str(tmp_path),
        "POLLY_LOG_LEVEL": "INFO",
        # One key opens them all: this is about shutdown, not the per-key rate limit.
        "POLLY_RATE_LIMIT_BURST": "100000",
        "POLLY_RATE_LIMIT_PER_SECOND": "100000",
        "POLLY_MAX_CONNECTIONS_PER_ADDRESS": "100000",  # thousands of sockets from loopback
    }
    clients: list[asyncio.subprocess.Process] = []
    async with announced(sys.executable, "-m", "app", "api", "--port", "0", env=env) as api:
        try:
            # Cheap raw graphql-transport-ws clients, the ones bench/fanout uses, each waiting
            # for one message on its own subscription.
            subscribe = json.dumps({"query": SUBSCRIPTION, "variables": {"g": str(playground)}})
            url = api.url.replace("http", "ws", 1) + "/graphql"
            share = str(SUBSCRIBERS // CLIENT_PROCESSES)
            client_env = {**os.environ, "POLLY_BENCH_AUTHORIZATION": f"Bearer {token}"}
            for _ in range(CLIENT_PROCESSES):
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench.ws_clients", url, share, "1", subscribe, "eager",
                    cwd=REPO, env=client_env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
                clients.append(process)
            for process in clients:
                assert process.stdout is not None
                assert await asyncio.wait_for(process.stdout.readline(), timeout=120) == b"ready\n"
            # A role change reaches every subscriber: all 5,000 subscriptions are open on the API.
            await http.call("POST", f"/guilds/{playground}/roles", json={"name": "Shutdown"})
            arrivals: list[list[float]] = []
            for process in clients:
                assert process.stdout is not None
                arrivals += json.loads(await asyncio.wait_for(process.stdout.readline(), timeout=150))
            assert len(arrivals) == SUBSCRIBERS and all(arrivals), "some subscribers got no event"

            api.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(api.process.wait(), timeout=60) == 0
            stderr = (await asyncio.wait_for(api.stderr, timeout=15)).decode()
            assert "Finished server process" in stderr, stderr
            assert not re.search(r"ERROR|Traceback", stderr), stderr
            # Every connection the API held to Redis is gone (the bot's and ours remain).
            assert await redis_clients(redis_url) == before
        finally:
            for process in clients:
                if process.returncode is None:
                    assert process.stdin is not None
                    process.stdin.close()  # a client disconnects and exits
            for process in clients:
                try:
                    await asyncio.wait_for(process.wait(), timeout=30)
                except TimeoutError:
                    process.kill()
                    await process.wait()
