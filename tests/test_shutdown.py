"""`polly api` stops on SIGTERM with thousands of subscriptions open: exit 0, no error logged.

Run as one process (``--workers 1``) and as a supervisor of two worker processes on one port
(``--workers 2``), the kernel spreading the subscriptions over the two: the supervisor passes
the SIGTERM on, and every worker closes its share and ends as one process would."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from app.sandbox.fixture import Fixture
from app.sandbox.server import Sandbox
from app.settings import Settings
from tests.conftest import REPO, TEST_SECRET_KEY, RunningBot, SandboxHttp, create_key, guild_id, wait_until
from tests.processes import announced
from tests.test_workers import alive, workers_of

# Thousands of sockets opened, served and closed, on a machine that may be running other tests.
pytestmark = [pytest.mark.workers_1_and_2, pytest.mark.timeout(300)]

SUBSCRIBERS = 5000
CLIENT_PROCESSES = 2
SUBSCRIPTION = "subscription($g: ID!) { guildRolesChanged(guildId: $g) { kind roleId } }"


async def redis_clients(url: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        return len(await client.client_list())
    finally:
        await client.aclose()


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets process ``pid`` holds open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def established() -> list[tuple[int, int, str]]:
    """Every established TCP connection end on this machine: local port, remote port, inode."""
    ends = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01":
                local, remote = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
                ends.append((local, remote, fields[9]))
    return ends


def connections_held(pid: int, port: int, clients: list[int]) -> int:
    """Connections to ``port`` from the processes ``clients`` whose server end ``pid`` holds."""
    ends = established()
    client_inodes = set().union(*(socket_inodes(client) for client in clients))
    client_ports = {local for local, remote, inode in ends if remote == port and inode in client_inodes}
    server_inodes = socket_inodes(pid)
    # Counted by inode: /proc/net/tcp is read in pieces, and a connection made or closed
    # meanwhile (by tests running beside this one) can be listed twice.
    return len(
        {
            inode
            for local, remote, inode in ends
            if local == port and remote in client_ports and inode in server_inodes
        }
    )


async def test_sigterm_with_5000_subscriptions_closes_them_and_exits_0(
    gateway_bot: RunningBot,
    sandbox: Sandbox,
    http: SandboxHttp,
    fixture: Fixture,
    redis_url: str,
    tmp_path: Path,
    workers: int,
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
    command = (sys.executable, "-m", "app", "api", "--port", "0", "--workers", str(workers))
    async with announced(*command, env=env) as api:
        if workers > 1:
            # The supervisor's line, printed once every worker listens.
            assert f"({workers} workers)" in api.banner, api.banner
        servers = workers_of(api) if workers > 1 else {api.process.pid}
        assert len(servers) == workers
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
            # The clients' "ready" says they sent their subscriptions: wait until the API runs all
            # of them (on a loaded machine it may turn a few away with SERVICE_UNAVAILABLE, and
            # the clients send those again) and every worker listens for the guild's events, or
            # the change could come before some.
            channel = f"guild_events:{playground}"
            probe = httpx.AsyncClient(timeout=10)
            async with aioredis.Redis.from_url(redis_url) as watcher, probe:

                async def all_subscribed() -> bool:
                    text = (await probe.get(f"{api.url}/metrics")).text
                    running = f'polly_subscriptions{{transport="graphql-transport-ws"}} {SUBSCRIBERS}.0'
                    listening = await watcher.pubsub_numsub(channel)
                    return running in text and bool(listening) and listening[0][1] >= workers

                try:
                    await wait_until(all_subscribed, within=120, interval=0.2)
                except TimeoutError:
                    lines = (await probe.get(f"{api.url}/metrics")).text.splitlines()
                    gauges = [
                        line for line in lines if line.startswith(("polly_subscriptions", "polly_open"))
                    ]
                    listening = await watcher.pubsub_numsub(channel)
                    raise AssertionError(f"not every subscription runs: {gauges}, {listening}") from None
            # A role change reaches every subscriber: all 5,000 subscriptions are open on the API.
            await http.call("POST", f"/guilds/{playground}/roles", json={"name": "Shutdown"})
            arrivals: list[list[float]] = []
            for process in clients:
                assert process.stdout is not None
                arrivals += json.loads(await asyncio.wait_for(process.stdout.readline(), timeout=150))
            assert len(arrivals) == SUBSCRIBERS and all(arrivals), "some subscribers got no event"
            # Each worker holds its share of them (the kernel spreads the connections about
            # evenly): each has thousands of subscriptions to close.
            port = int(api.url.rsplit(":", 1)[1])
            held = {pid: connections_held(pid, port, [c.pid for c in clients]) for pid in servers}
            assert min(held.values()) > SUBSCRIBERS // (4 * workers), held

            api.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(api.process.wait(), timeout=60) == 0
            stderr = (await asyncio.wait_for(api.stderr, timeout=15)).decode()
            # Every worker finished serving, each as one process would.
            for pid in servers:
                assert f"Finished server process [{pid}]" in stderr, stderr
            assert not any(alive(pid) for pid in servers)
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
