"""The gateway bot against the sandbox's real gateway and a real Redis."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as redis

from app.bot.runner import run_bot
from app.redis_server import RedisServer
from app.sandbox.fixture import Fixture
from app.sandbox.server import Sandbox
from tests.conftest import (
    REPO,
    RunningApi,
    RunningBot,
    SandboxHttp,
    channel_id,
    guild_id,
    role_id,
    wait_until,
)

pytestmark = pytest.mark.timeout(90)

PINGABLE = "query($g: ID!, $c: ID) { pingableRoles(guildId: $g, channelId: $c) { name } }"


async def test_every_guild_is_answered_without_rest_calls(
    gateway_bot: RunningBot, api: RunningApi, fixture: Fixture
) -> None:
    api.sandbox.stats.reset()
    for guild in gateway_bot.bot_guild_ids():
        status, body = await api.query(PINGABLE, {"g": str(guild)})
        assert status == 200 and "errors" not in body
    assert api.rest_calls() == 0


async def visible(api: RunningApi, variables: dict[str, str], expect: Callable[[list[str]], bool]) -> None:
    async def shown() -> bool:
        _, body = await api.query(PINGABLE, variables)
        return expect([role["name"] for role in body["data"]["pingableRoles"]])

    await wait_until(shown, within=10)


async def test_changes_through_rest_are_visible_without_rest_calls(
    gateway_bot: RunningBot, api: RunningApi, http: SandboxHttp, fixture: Fixture
) -> None:
    playground = guild_id(fixture, "Polly Playground")
    g = {"g": str(playground)}

    # The only REST calls allowed are the test's own changes: neither the API nor the bot
    # asks Discord anything while the changes flow through the gateway.
    ours = 0
    api.sandbox.stats.reset()

    async def change(method: str, path: str, body: Any = None) -> Any:
        nonlocal ours
        response, answer = await http.call(method, path, json=body)
        assert response.status < 300, answer
        ours += 1
        return answer

    # A role created, renamed, deleted.
    role = await change("POST", f"/guilds/{playground}/roles", {"name": "Raid Team", "mentionable": True})
    await visible(api, g, lambda names: "Raid Team" in names)
    await change("PATCH", f"/guilds/{playground}/roles/{role['id']}", {"name": "Raid Crew"})
    await visible(api, g, lambda names: "Raid Crew" in names and "Raid Team" not in names)
    await change("DELETE", f"/guilds/{playground}/roles/{role['id']}")
    await visible(api, g, lambda names: "Raid Crew" not in names)

    # The bot's own member. The owner moves MENTION_EVERYONE from the bot's role to Poll
    # Voters; the bot then gives itself Poll Voters through REST and pings everything again.
    voters = role_id(fixture, "Polly Playground", "Poll Voters")
    polly = role_id(fixture, "Polly Playground", "Polly")
    mention_everyone, manage = 1 << 17, (1 << 28) | (1 << 4) | (1 << 11)
    await http.control(
        "PATCH", f"/_sandbox/guilds/{playground}/roles/{voters}", {"permissions": str(mention_everyone)}
    )
    await http.control("PATCH", f"/_sandbox/guilds/{playground}/roles/{polly}", {"permissions": str(manage)})
    await visible(api, g, lambda names: "Quiet Folk" not in names)
    await change(
        "PATCH", f"/guilds/{playground}/members/{fixture.bot.id}", {"roles": [str(polly), str(voters)]}
    )
    await visible(api, g, lambda names: "Quiet Folk" in names)

    # A channel overwrite that denies the bot MENTION_EVERYONE.
    polls = channel_id(fixture, "Polly Playground", "polls")
    deny = {"id": str(fixture.bot.id), "type": 1, "allow": "0", "deny": str(1 << 17)}
    await change("PATCH", f"/channels/{polls}", {"permission_overwrites": [deny]})
    await visible(api, {**g, "c": str(polls)}, lambda names: "Quiet Folk" not in names)

    assert api.rest_calls() == ours == 5


async def test_an_update_that_changes_nothing_exposed_publishes_nothing(
    gateway_bot: RunningBot, http: SandboxHttp, fixture: Fixture
) -> None:
    playground = guild_id(fixture, "Polly Playground")
    voters = role_id(fixture, "Polly Playground", "Poll Voters")
    before = await gateway_bot.events(playground)
    version_before = (await gateway_bot.cached(playground)).version  # type: ignore[union-attr]

    await http.call(
        "PATCH", f"/guilds/{playground}/roles/{voters}", json={"name": "Poll Voters"}
    )  # same name
    # Then an effective change; events are applied in order, so once it shows, the no-op has
    # been applied too.
    await http.call("PATCH", f"/guilds/{playground}/roles/{voters}", json={"hoist": True})

    async def one_more() -> bool:
        return len(await gateway_bot.events(playground)) > len(before)

    await wait_until(one_more, within=10)
    new = (await gateway_bot.events(playground))[len(before) :]
    assert [(e["kind"], e["role_id"]) for e in new] == [("ROLE_UPDATED", str(voters))]
    assert int(new[0]["version"]) == version_before + 1  # the no-op did not even write


async def test_events_carry_growing_versions(
    gateway_bot: RunningBot, http: SandboxHttp, fixture: Fixture
) -> None:
    playground = guild_id(fixture, "Polly Playground")
    pubsub = gateway_bot.redis.pubsub()
    await pubsub.subscribe(f"guild_events:{playground}")
    await pubsub.get_message(timeout=10)  # the subscription confirmation
    _, role = await http.call("POST", f"/guilds/{playground}/roles", json={"name": "Temp"})
    await http.call("PATCH", f"/guilds/{playground}/roles/{role['id']}", json={"color": 0x123456})
    await http.call("DELETE", f"/guilds/{playground}/roles/{role['id']}")

    announced = []
    while len(announced) < 3:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=10)
        assert message is not None, "an event was not announced on pub/sub"
        announced.append(orjson.loads(message["data"]))
    await pubsub.aclose()
    assert [e["kind"] for e in announced] == ["ROLE_CREATED", "ROLE_UPDATED", "ROLE_DELETED"]
    versions = [e["version"] for e in announced]
    assert versions == sorted(versions) and len(set(versions)) == 3
    stream = (await gateway_bot.events(playground))[-3:]
    assert [e["kind"] for e in stream] == ["ROLE_CREATED", "ROLE_UPDATED", "ROLE_DELETED"]
    assert [int(e["version"]) for e in stream] == versions
    assert {e["role_id"] for e in stream} == {role["id"]}


@pytest.mark.parametrize("control", ["/_sandbox/gateway/reconnect", "/_sandbox/gateway/invalidate-session"])
async def test_the_cache_equals_discord_after_a_reconnect(
    gateway_bot: RunningBot, http: SandboxHttp, fixture: Fixture, control: str
) -> None:
    playground = guild_id(fixture, "Polly Playground")
    voters = role_id(fixture, "Polly Playground", "Poll Voters")
    await http.control("POST", control)
    # Changes while the bot is away: replayed after RESUME, or carried by the new session's
    # GUILD_CREATE.
    _, created = await http.call("POST", f"/guilds/{playground}/roles", json={"name": "While Away"})
    await http.call("PATCH", f"/guilds/{playground}/roles/{voters}", json={"mentionable": False})
    await wait_until(gateway_bot.all_cached, within=15)
    cached = await gateway_bot.cached(playground)
    assert cached is not None and int(created["id"]) in cached.roles_by_id
    assert cached.roles_by_id[voters]["mentionable"] is False


async def test_a_slow_refill_never_overwrites_newer_gateway_data(
    gateway_bot: RunningBot, api: RunningApi, http: SandboxHttp, fixture: Fixture
) -> None:
    quiet = guild_id(fixture, "Quiet Corner")
    artists = role_id(fixture, "Quiet Corner", "Artists")
    await gateway_bot.redis.delete(f"guild_roles_ping:{{{quiet}}}")  # the API must refill from REST
    await http.control(
        "POST",
        "/_sandbox/faults",
        {"method": "GET", "route": "/guilds/{guild_id}/channels", "latency_ms": 600},
    )
    # The refill reads the roles at once, then waits for the channels; meanwhile the role is
    # renamed and the bot writes the newer version.
    refill = asyncio.create_task(api.query(PINGABLE, {"g": str(quiet)}))
    await wait_until(lambda: _called(api, "GET /guilds/{guild_id}"), within=10)
    await http.control("PATCH", f"/_sandbox/guilds/{quiet}/roles/{artists}", {"name": "Painters"})
    status, _ = await refill
    assert status == 200

    async def renamed() -> bool:
        cached = await gateway_bot.cached(quiet)
        return cached is not None and cached.roles_by_id[artists]["name"] == "Painters"

    await wait_until(renamed, within=10)
    assert api.services.role_cache.counters.writes_refused >= 1
    _, body = await api.query("query($g: ID!) { guildRoles(guildId: $g) { name } }", {"g": str(quiet)})
    assert "Painters" in [r["name"] for r in body["data"]["guildRoles"]]


async def _called(api: RunningApi, route: str) -> bool:
    return api.calls_to(route) > 0


async def test_redis_down_keeps_the_session_and_resyncs_every_guild(
    bot_factory: Callable[[str], Awaitable[RunningBot]],
    http: SandboxHttp,
    fixture: Fixture,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="app.bot.sync")
    server = RedisServer(tmp_path)  # keeps nothing on disk: a restart loses everything
    await server.start_async()
    try:
        bot = await bot_factory(server.url)
        sessions = (await http.control("GET", "/_sandbox/gateway/sessions"))["sessions"]
        playground = guild_id(fixture, "Polly Playground")
        voters = role_id(fixture, "Polly Playground", "Poll Voters")

        # An outage the bot lives through: Redis stops while the event loop runs on, the bot
        # fails a write and notices, and more changes come meanwhile.
        await server.stop_async()
        _, first = await http.call("POST", f"/guilds/{playground}/roles", json={"name": "During Outage"})

        def logged(text: str) -> Callable[[], Awaitable[bool]]:
            async def seen() -> bool:
                return any(text in record.getMessage() for record in caplog.records)

            return seen

        await wait_until(logged("Redis is unavailable"), within=30)
        _, second = await http.call("POST", f"/guilds/{playground}/roles", json={"name": "Still Out"})
        await http.call("PATCH", f"/guilds/{playground}/roles/{voters}", json={"mentionable": False})
        assert not await logged("Redis is back;")()  # not yet: nothing answers
        await server.start_async()

        await wait_until(logged("Redis is back; every guild was resynced."), within=30)
        await wait_until(bot.all_cached, within=30)
        cached = await bot.cached(playground)
        assert cached is not None
        assert {int(first["id"]), int(second["id"])} <= set(cached.roles_by_id)
        assert cached.roles_by_id[voters]["mentionable"] is False
        after = (await http.control("GET", "/_sandbox/gateway/sessions"))["sessions"]
        assert [s["session_id"] for s in after] == [s["session_id"] for s in sessions]  # same session
        # Every guild is announced as resynced, since its events during the outage were lost.
        for guild in bot.bot_guild_ids():
            assert {e["kind"] for e in await bot.events(guild)} == {"GUILD_RESYNCED"}, guild
    finally:
        await server.stop_async()


async def test_polly_bot_runs_until_sigterm(sandbox: Sandbox, redis_url: str) -> None:
    env = {
        **os.environ,
        "POLLY_DISCORD_API_URL": sandbox.api_url,
        "POLLY_DISCORD_GATEWAY_URL": sandbox.gateway_url,
        "POLLY_DISCORD_TOKEN": sandbox.fixture.bot.token,
        "POLLY_REDIS_URL": redis_url,
        "POLLY_BOT_METRICS_PORT": "0",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "bot", cwd=REPO, env=env, stderr=asyncio.subprocess.PIPE
    )
    client = redis.Redis.from_url(redis_url)
    try:
        guilds = [g.id for g in sandbox.fixture.guilds if g.name != "Elsewhere"]

        async def cached() -> bool:
            return bool(await client.exists(*(f"guild_roles_ping:{{{g}}}" for g in guilds)) == len(guilds))

        await wait_until(cached, within=20)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await client.aclose()

    refused = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "bot", cwd=REPO, env={**env, "POLLY_DISCORD_TOKEN": "wrong"},
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(refused.communicate(), timeout=30)
    assert refused.returncode == 2 and b"refused POLLY_DISCORD_TOKEN" in stderr and b"Traceback" not in stderr


async def test_leaving_a_guild_drops_its_keys(
    gateway_bot: RunningBot, http: SandboxHttp, fixture: Fixture
) -> None:
    hq = guild_id(fixture, "Polly HQ")
    assert await gateway_bot.cached(hq) is not None
    response, _ = await http.call("DELETE", f"/users/@me/guilds/{hq}")
    assert response.status == 204

    async def gone() -> bool:
        return not await gateway_bot.redis.exists(
            f"guild_roles_ping:{{{hq}}}", f"guild_roles_ping_last_known:{{{hq}}}"
        )

    await wait_until(gone, within=10)
    assert not await gateway_bot.redis.sismember("bot_guilds", hq)


async def test_shards_follow_get_gateway_bot(redis_url: str) -> None:
    from app.discord.client import point_discord_py_at
    from app.sandbox.builtin import generated_fixture

    sharded = Sandbox(generated_fixture(40, shards=3).model_copy(update={"max_concurrency": 3}))
    await sharded.start()
    point_discord_py_at(sharded.api_url, sharded.gateway_url)
    running = RunningBot(sharded, redis_url)
    running.task = asyncio.create_task(run_bot(running.settings, running.stop, handle_signals=False))
    try:
        await wait_until(running.all_cached, within=30)
        sessions = sharded.gateway.describe()
        assert sorted(s["shard"][0] for s in sessions) == [0, 1, 2]
        assert {s["shard"][1] for s in sessions} == {3}
    finally:
        running.stop.set()
        await asyncio.wait_for(running.task, timeout=20)
        await running.redis.aclose()
        await sharded.stop()
