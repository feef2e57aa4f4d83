"""Single-flight fills, last-known data when Discord fails, and answers while Redis is down."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.redis_server import RedisServer
from app.sandbox.fixture import Fixture
from app.sandbox.server import Sandbox
from app.settings import Settings
from tests.conftest import TEST_SECRET_KEY, RunningApi, SandboxHttp, create_key, guild_id, wait_until
from tests.processes import Announced, announced, refused_port

PINGABLE = "query($g: ID!) { pingableRoles(guildId: $g) { name } }"


async def test_concurrent_cold_queries_cause_one_fill(api: RunningApi, fixture: Fixture) -> None:
    big = str(guild_id(fixture, "Big Guild"))
    # Distinct documents, so the response cache cannot answer any of them.
    queries = [f"query Q{n}($g: ID!) {{ pingableRoles(guildId: $g) {{ id }} }}" for n in range(100)]
    results = await asyncio.gather(*(api.query(q, {"g": big}) for q in queries))
    assert {status for status, _ in results} == {200}
    assert all(len(body["data"]["pingableRoles"]) == 124 for _, body in results)
    assert api.calls_to("GET /guilds/{guild_id}") == 1
    assert api.rest_calls() == 3


@pytest_asyncio.fixture
async def two_api_processes(
    sandbox: Sandbox, redis_url: str, tmp_path: Path
) -> AsyncIterator[tuple[list[str], dict[str, str]]]:
    """Two ``polly api`` processes sharing one Redis and one database, talking to the sandbox;
    and the headers of an API key for every fixture guild."""
    key = await create_key(
        Settings(data_dir=tmp_path), [guild.id for guild in sandbox.fixture.guilds], ["roles:read"]
    )
    env = {
        **os.environ,
        "POLLY_DISCORD_API_URL": sandbox.api_url,
        "POLLY_DISCORD_GATEWAY_URL": sandbox.gateway_url,
        "POLLY_DISCORD_TOKEN": sandbox.fixture.bot.token,
        "POLLY_REDIS_URL": redis_url,
        "POLLY_LOG_LEVEL": "WARNING",
        "POLLY_SECRET_KEY": TEST_SECRET_KEY,
        "POLLY_DATA_DIR": str(tmp_path),
        "POLLY_RATE_LIMIT_BURST": "100000",
        "POLLY_MAX_CONNECTIONS_PER_ADDRESS": "100000",  # a hundred connections from loopback each
    }
    async with contextlib.AsyncExitStack() as stack:
        api = [sys.executable, "-m", "app", "api", "--port", "0"]
        processes: list[Announced] = [
            await stack.enter_async_context(announced(*api, env=env)) for _ in range(2)
        ]
        yield [process.url for process in processes], {"Authorization": f"Bearer {key}"}


async def test_concurrent_cold_queries_across_processes_cause_one_fill(
    two_api_processes: tuple[list[str], dict[str, str]], sandbox: Sandbox, fixture: Fixture
) -> None:
    urls, auth = two_api_processes
    sandbox.stats.reset()
    big = str(guild_id(fixture, "Big Guild"))
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(limits=limits, timeout=30, headers=auth) as client:

        async def ask(n: int) -> int:
            url = urls[n % 2]
            query = f"query Q{n}($g: ID!) {{ pingableRoles(guildId: $g) {{ id }} }}"
            response = await client.post(f"{url}/graphql", json={"query": query, "variables": {"g": big}})
            assert "errors" not in response.json()
            return len(response.json()["data"]["pingableRoles"])

        assert set(await asyncio.gather(*(ask(n) for n in range(200)))) == {124}
    assert sandbox.stats.snapshot()["by_route"].get("GET /guilds/{guild_id}") == 1
    assert sandbox.stats.snapshot()["total"] == 3


async def test_discord_failures_serve_the_last_known_data(
    api_factory: Any, fixture: Fixture, http: SandboxHttp
) -> None:
    api: RunningApi = await api_factory(discord_timeout=1.0)
    quiet = guild_id(fixture, "Quiet Corner")
    _, first = await api.query(PINGABLE, {"g": str(quiet)})
    assert "extensions" not in first

    await api.services.role_cache.invalidate_guild_roles_cache(quiet)  # as if the TTL had passed
    for fault in (
        {"status": 503, "count": 1},  # a 5xx
        {"latency_ms": 3000, "count": 1},  # a timeout
        {"status": 429, "retry_after": 120, "count": 1},  # a rate limit past our bound
    ):
        await http.control(
            "POST", "/_sandbox/faults", {"method": "GET", "route": "/guilds/{guild_id}", **fault}
        )
        status, body = await api.query(PINGABLE, {"g": str(quiet)})
        assert status == 200
        assert body["data"] == first["data"]
        [stale] = body["extensions"]["stale"]
        assert stale["guildId"] == str(quiet) and stale["reason"]
        await http.control("DELETE", "/_sandbox/faults")

    # Once Discord answers again (and the brief memory of its failure lapses), fresh data
    # comes back and the marker goes.
    async def fresh() -> bool:
        _, body = await api.query(PINGABLE, {"g": str(quiet)})
        return body == first

    await wait_until(fresh, within=5)


async def test_discord_failing_without_earlier_data_is_a_clear_error(
    api: RunningApi, fixture: Fixture, http: SandboxHttp
) -> None:
    await http.control(
        "POST", "/_sandbox/faults", {"method": "GET", "route": "/guilds/{guild_id}", "status": 503}
    )
    status, body = await api.query(PINGABLE, {"g": str(guild_id(fixture, "Polly HQ"))})
    assert status == 200
    [error] = body["errors"]
    assert error["extensions"]["code"] == "DISCORD_UNAVAILABLE"
    assert "retry" in error["message"]


@pytest_asyncio.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A redis-server this test may stop and start again (keeping nothing on disk)."""
    server = RedisServer(tmp_path)
    await server.start_async()
    try:
        yield server
    finally:
        await server.stop_async()


async def test_redis_down_answers_from_discord_and_readyz_says_degraded(
    api_factory: Any, fixture: Fixture, own_redis: RedisServer
) -> None:
    api: RunningApi = await api_factory(redis_url=own_redis.url)
    playground, quiet = (str(guild_id(fixture, name)) for name in ("Polly Playground", "Quiet Corner"))
    _, expected = await api.query(PINGABLE, {"g": playground})
    assert (await api.client.get("/readyz")).json()["status"] == "ready"

    await own_redis.stop_async()
    api.sandbox.stats.reset()
    results = await asyncio.gather(*(api.query(PINGABLE, {"g": playground}) for _ in range(20)))
    for status, body in results:
        assert status == 200 and body["data"] == expected["data"]
        assert "degraded" in body["extensions"]
    # Still single-flight: the twenty concurrent requests shared one fill.
    assert api.rest_calls() == 3
    # And kept briefly in memory, so the next ones do not go to Discord again.
    await api.query(PINGABLE, {"g": playground})
    assert api.rest_calls() == 3
    status, body = await api.query(PINGABLE, {"g": quiet})
    assert status == 200 and [r["name"] for r in body["data"]["pingableRoles"]] == ["Helpers", "Artists"]

    ready = await api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded" and ready.json()["redis"]["ok"] is False

    await own_redis.start_async()

    async def recovered() -> bool:
        return bool((await api.client.get("/readyz")).json()["status"] == "ready")

    await wait_until(recovered, within=10)
    status, body = await api.query(PINGABLE, {"g": playground})
    assert status == 200 and "extensions" not in body


@pytest.fixture
def dead_redis_url() -> Iterator[str]:
    """A Redis URL whose connections are refused for the whole test, teardown included."""
    with refused_port() as port:
        yield f"redis://127.0.0.1:{port}/0"


@pytest.mark.parametrize("redis_reachable", [True, False])
async def test_readyz_reports_discord_down(
    dead_redis_url: str, api_factory: Any, fixture: Fixture, http: SandboxHttp, redis_reachable: bool
) -> None:
    overrides: dict[str, Any] = {"discord_timeout": 0.5}
    if not redis_reachable:
        overrides["redis_url"] = dead_redis_url
    api: RunningApi = await api_factory(**overrides)
    await http.control("POST", "/_sandbox/faults", {"method": "*", "route": "*", "status": 503, "count": 100})
    await api.query(PINGABLE, {"g": str(guild_id(fixture, "Polly HQ"))})
    ready = await api.client.get("/readyz")
    assert ready.json()["discord"]["ok"] is False
    if redis_reachable:
        assert (ready.status_code, ready.json()["status"]) == (200, "degraded")
    else:
        assert (ready.status_code, ready.json()["status"]) == (503, "unavailable")

    # Once Discord answers again, /readyz finds out by itself (a probe at most every 5 s).
    await http.control("DELETE", "/_sandbox/faults")

    async def discord_back() -> bool:
        return bool((await api.client.get("/readyz")).json()["discord"]["ok"])

    await wait_until(discord_back, within=8)
