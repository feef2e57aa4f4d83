"""``polly api --workers N``: N processes on one port, each a whole API (its own hub, fan-out
and caches), counted as one by ``/metrics``, kept running by their supervisor."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from app.sandbox.server import Sandbox
from app.settings import Settings
from tests.conftest import (
    RunningBot,
    SandboxHttp,
    create_key,
    guild_id,
    polly_environment,
    wait_until,
)
from tests.processes import Announced, announced
from tests.test_subscriptions import Subscriber, subscribe

pytestmark = pytest.mark.asyncio


def workers_of(supervisor: Announced) -> set[int]:
    pid = supervisor.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(child) for child in children}


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


async def test_two_workers_share_the_port_the_events_and_the_metrics(
    gateway_bot: RunningBot, sandbox: Sandbox, http: SandboxHttp, redis_url: str, tmp_path: Path
) -> None:
    env = polly_environment(sandbox, redis_url, tmp_path)
    playground = guild_id(sandbox.fixture, "Polly Playground")
    key = await create_key(Settings(data_dir=tmp_path), [playground], ["roles:read"])
    headers = {"Authorization": f"Bearer {key}"}
    subscribers: list[Subscriber] = []
    watcher = aioredis.Redis.from_url(redis_url)
    async with (
        announced(
            sys.executable, "-m", "app", "api", "--port", "0", "--workers", "2", env=env, line="2 workers"
        ) as api,
        httpx.AsyncClient(timeout=10) as probe,
    ):
        try:
            workers = workers_of(api)
            assert len(workers) == 2

            # Subscribers until both workers hold the guild's Redis subscription (the kernel
            # spreads connections over the workers' sockets).
            socket_url = api.url.replace("http", "ws") + "/graphql"

            async def both_workers_subscribed() -> bool:
                await subscribe(subscribers, socket_url, {"g": str(playground)}, headers=headers)
                numbers = await watcher.pubsub_numsub(f"guild_events:{playground}")
                return bool(numbers and numbers[0][1] >= 2)

            await wait_until(both_workers_subscribed, within=30, interval=0)

            async def all_running() -> bool:
                text = (await probe.get(f"{api.url}/metrics")).text
                return f'polly_subscriptions{{transport="graphql-transport-ws"}} {len(subscribers)}.0' in text

            await wait_until(all_running, within=10)
            _, role = await http.call("POST", f"/guilds/{playground}/roles", json={"name": "Both Workers"})
            received: list[dict[str, Any]] = [await subscriber.next() for subscriber in subscribers]
            assert {message["roleId"] for message in received} == {role["id"]}

            ping = {"query": "query Ping { __typename }"}
            async with httpx.AsyncClient(timeout=10) as client:
                for _ in range(20):
                    # A connection each: the kernel picks a worker for each.
                    async with httpx.AsyncClient(timeout=10) as fresh:
                        assert (await fresh.post(f"{api.url}/graphql", json=ping)).status_code == 200
                text = (await client.get(f"{api.url}/metrics")).text
                assert 'polly_requests_total{operation="Ping",outcome="ok"} 20.0' in text, text
                assert f'polly_subscriptions{{transport="graphql-transport-ws"}} {len(subscribers)}.0' in text

                # A worker that dies is replaced; the port answers all along.
                victim = sorted(workers)[0]
                os.kill(victim, signal.SIGKILL)

                async def replaced() -> bool:
                    now = workers_of(api)
                    return len(now) == 2 and victim not in now

                await wait_until(replaced, within=20, interval=0.1)
                for _ in range(5):
                    async with httpx.AsyncClient(timeout=10) as fresh:
                        assert (await fresh.post(f"{api.url}/graphql", json=ping)).status_code == 200
        finally:
            for subscriber in subscribers:
                await subscriber.stop()
            await watcher.aclose()
        final = workers_of(api)
        api.process.send_signal(signal.SIGTERM)
        code = await api.process.wait()
        assert code == 0, (await api.stderr).decode()
        assert not any(alive(pid) for pid in final)


def status_field(pid: int, name: str) -> str:
    """A field of the kernel's status of process ``pid``, as /proc/PID/status gives it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"/proc/{pid}/status has no {name}")


def signal_pending(pid: int, signum: int) -> bool:
    """Whether ``signum`` waits, undelivered, for process ``pid`` (stopped, it cannot take it)."""
    masks = (int(status_field(pid, field), 16) for field in ("SigPnd", "ShdPnd"))
    return any(mask & (1 << (signum - 1)) for mask in masks)


async def test_a_worker_that_fails_while_stopping_makes_the_stop_fail(
    sandbox: Sandbox, redis_url: str, tmp_path: Path
) -> None:
    env = polly_environment(sandbox, redis_url, tmp_path)
    async with announced(
        sys.executable, "-m", "app", "api", "--port", "0", "--workers", "2", env=env, line="2 workers"
    ) as api:
        frozen, other = sorted(workers_of(api))
        os.kill(frozen, signal.SIGSTOP)
        try:
            # Stopped before the supervisor's SIGTERM is sent: a SIGTERM arriving first is taken.
            async def is_frozen() -> bool:
                return status_field(frozen, "State").startswith("T")

            await wait_until(is_frozen, within=10, interval=0.01)
            api.process.send_signal(signal.SIGTERM)

            # The supervisor has asked it to stop (the signal waits while it is frozen): it dies
            # instead, as a worker crashing while it stops would.
            async def asked_to_stop() -> bool:
                return signal_pending(frozen, signal.SIGTERM)

            await wait_until(asked_to_stop, within=10, interval=0.01)
        finally:
            os.kill(frozen, signal.SIGKILL)
        assert await asyncio.wait_for(api.process.wait(), timeout=30) == 1
        stderr = (await asyncio.wait_for(api.stderr, timeout=10)).decode()
        assert f"Worker (pid {frozen}) stopped with status -9." in stderr, stderr
        assert f"Worker (pid {other})" not in stderr, stderr
        assert not alive(frozen) and not alive(other)
