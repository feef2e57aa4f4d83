"""README promises of the gateway bot, the fill lock and the event hub, each made to happen for
real: the bot on the sandbox's gateway, a real redis-server, real subscribers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
import redis.asyncio as redis
from discord import Permissions
from redis.asyncio.client import PubSub

from app.bot.runner import run_bot
from app.redis_server import RedisServer
from app.sandbox.fixture import Fixture
from app.sandbox.server import Sandbox
from app.settings import Settings
from tests.conftest import RunningApi, RunningBot, SandboxHttp, channel_id, guild_id, role_id, wait_until
from tests.test_subscriptions import Subscriber, held, subscribe

# The tests that subscribe (4c) run against one API worker and against two sharing the port
# (marked workers_1_and_2), with a subscriber on every worker; the others open no subscription.
pytestmark = pytest.mark.timeout(90)

PINGABLE = "query($g: ID!) { pingableRoles(guildId: $g) { name } }"
FILL_ROUTE = "GET /guilds/{guild_id}"  # the first of a fill's three REST calls


def bits(**flags: bool) -> str:
    return str(Permissions(**flags).value)


def logged(caplog: pytest.LogCaptureFixture, text: str, times: int = 1) -> Callable[[], Awaitable[bool]]:
    """Whether ``text`` was logged, at least ``times`` times (once by each of that many API
    workers, which log in this process)."""

    async def seen() -> bool:
        return sum(text in record.getMessage() for record in caplog.records) >= times

    return seen


async def new_events(bot: RunningBot, guild: int, seen: int, count: int) -> list[dict[str, Any]]:
    """The guild's stream entries after the first ``seen``, once there are ``count`` of them."""

    async def arrived() -> bool:
        return len(await bot.events(guild)) >= seen + count

    await wait_until(arrived, within=15)
    return (await bot.events(guild))[seen:]


async def announcements(pubsub: PubSub, count: int) -> list[dict[str, Any]]:
    """The next ``count`` events announced on a subscribed pub/sub connection."""
    received: list[dict[str, Any]] = []
    async with asyncio.timeout(15):
        while len(received) < count:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                received.append(orjson.loads(message["data"]))
    return received


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["kind"], str(e["role_id"]), str(e["channel_id"])) for e in events]


# -- 1. BOT_PERMISSIONS_CHANGED and CHANNEL_UPDATED ------------------------------------------------


async def test_ability_changes_are_announced_as_such_and_a_channel_rename_is_not(
    gateway_bot: RunningBot, http: SandboxHttp, fixture: Fixture
) -> None:
    playground = guild_id(fixture, "Polly Playground")
    polly = role_id(fixture, "Polly Playground", "Polly")  # the bot's own role
    quiet_folk = role_id(fixture, "Polly Playground", "Quiet Folk")  # a role the bot lacks
    general = channel_id(fixture, "Polly Playground", "general")
    polls = channel_id(fixture, "Polly Playground", "polls")
    pubsub = gateway_bot.redis.pubsub()
    await pubsub.subscribe(f"guild_events:{playground}")
    await pubsub.get_message(timeout=10)  # the subscription's confirmation
    seen = len(await gateway_bot.events(playground))

    async def rest(method: str, path: str, body: Any) -> None:
        response, answer = await http.call(method, path, json=body)
        assert response.status < 300, answer

    # The bot's role loses MENTION_EVERYONE: a role update, but what it changes for clients is
    # what the bot may ping, so that is how it is announced.
    keep = bits(manage_roles=True, manage_channels=True, send_messages=True)
    await http.control("PATCH", f"/_sandbox/guilds/{playground}/roles/{polly}", {"permissions": keep})
    lost = await new_events(gateway_bot, playground, seen, 1)
    assert summary(lost) == [("BOT_PERMISSIONS_CHANGED", str(polly), "")]

    # Two channel changes nobody can see in an answer: a rename, and an overwrite for a role the
    # bot does not have. Then one the bot feels: it may no longer see #polls. Dispatches apply
    # in order, so once that one is in the stream the two before it were applied, silently.
    await rest("PATCH", f"/channels/{general}", {"name": "chit-chat"})
    await rest(
        "PUT",
        f"/channels/{general}/permissions/{quiet_folk}",
        {"type": 0, "deny": bits(send_messages=True)},
    )
    await rest(
        "PUT",
        f"/channels/{polls}/permissions/{gateway_bot.sandbox.fixture.bot.id}",
        {"type": 1, "deny": bits(view_channel=True)},
    )
    hidden = await new_events(gateway_bot, playground, seen, 2)
    assert summary(hidden[1:]) == [("CHANNEL_UPDATED", "", str(polls))]
    cached = await gateway_bot.cached(playground)
    assert cached is not None and cached.channels[general].name == "chit-chat"  # written, not announced
    assert quiet_folk in {o.id for o in cached.channels[general].overwrites}

    # The bot's role gains ADMINISTRATOR (announced as such), then only changes colour: a role
    # update that changes nothing the bot may do stays a ROLE_UPDATED.
    admin = bits(administrator=True, manage_roles=True, manage_channels=True, send_messages=True)
    await http.control("PATCH", f"/_sandbox/guilds/{playground}/roles/{polly}", {"permissions": admin})
    await http.control("PATCH", f"/_sandbox/guilds/{playground}/roles/{polly}", {"color": 0x123456})
    everything = await new_events(gateway_bot, playground, seen, 4)
    expected = [
        ("BOT_PERMISSIONS_CHANGED", str(polly), ""),
        ("CHANNEL_UPDATED", "", str(polls)),
        ("BOT_PERMISSIONS_CHANGED", str(polly), ""),
        ("ROLE_UPDATED", str(polly), ""),
    ]
    assert summary(everything) == expected  # one event each, nothing for the rename or the overwrite

    # The same events, announced on pub/sub as they were appended, ids and versions included.
    announced = await announcements(pubsub, 4)
    await pubsub.aclose()
    assert summary(announced) == expected
    entries = await gateway_bot.redis.xrange(f"guild_events:{{{playground}}}") or []
    ids = [entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id) for entry_id, _ in entries]
    assert [e["id"] for e in announced] == ids[seen:]
    assert [int(e["version"]) for e in announced] == [int(e["version"]) for e in everything]
    assert {e["guild_id"] for e in announced} == {str(playground)}


# -- 2. the refresh loop keeps the cached guilds from expiring -------------------------------------


@contextlib.asynccontextmanager
async def bot_with(sandbox: Sandbox, redis_url: str, **overrides: Any) -> AsyncIterator[RunningBot]:
    """``polly bot`` as conftest's bot_factory runs it, with settings of the test's own."""
    running = RunningBot(sandbox, redis_url)
    settings = Settings(
        discord_api_url=sandbox.api_url,
        discord_gateway_url=sandbox.gateway_url,
        discord_token=sandbox.fixture.bot.token,
        redis_url=redis_url,
        **overrides,
    )
    task = asyncio.create_task(run_bot(settings, running.stop, handle_signals=False))
    try:
        await wait_until(running.all_cached, within=20)
        yield running
    finally:
        running.stop.set()
        await asyncio.wait_for(task, timeout=20)
        await running.redis.aclose()


async def test_the_refresh_loop_keeps_every_guild_past_its_ttl(sandbox: Sandbox, redis_url: str) -> None:
    ttl = 3  # the bot refreshes every ttl / 3 seconds (app/bot/runner.py)
    async with bot_with(sandbox, redis_url, role_cache_ttl=ttl, stale_grace=1) as bot:
        guilds = sorted(bot.bot_guild_ids())
        names = ("guild_roles_ping", "guild_roles_ping_last_known")
        keys = [f"{name}:{{{g}}}" for g in guilds for name in names]
        versions = {g: (await bot.cached(g)).version for g in guilds}  # type: ignore[union-attr]
        events = {g: await bot.events(g) for g in guilds}
        loop = asyncio.get_running_loop()
        started = loop.time()  # the keys were written before this: their age is at least the wait
        last: list[int] | None = None
        renewals = [0] * len(keys)

        async def outlived_their_ttl() -> bool:
            nonlocal last
            pttls = [await bot.redis.pttl(key) for key in keys]
            # -2: gone, -1: no TTL. Either is a broken promise, whenever it shows.
            assert all(p > 0 for p in pttls), dict(zip(keys, pttls, strict=True))
            if last is not None:
                for i, (before, now) in enumerate(zip(last, pttls, strict=True)):
                    if now > before:  # a TTL only goes up when something renews it
                        renewals[i] += 1
            last = pttls
            return min(renewals) >= 2 and loop.time() - started > 1.5 * ttl

        await wait_until(outlived_their_ttl, within=30)
        # Not expired and written again either: that would have taken a new version.
        assert {g: (await bot.cached(g)).version for g in guilds} == versions  # type: ignore[union-attr]
        assert {g: await bot.events(g) for g in guilds} == events  # and announced nothing

        # Evicted rather than expired (maxmemory, an operator's DEL): the next refresh writes
        # the bot's own copy back, as a new version, so reads never fall back to REST for long.
        evicted = guilds[0]
        await bot.redis.delete(f"guild_roles_ping:{{{evicted}}}")

        async def written_back() -> bool:
            return await bot.matches_sandbox(evicted)

        await wait_until(written_back, within=10)
        assert (await bot.cached(evicted)).version > versions[evicted]  # type: ignore[union-attr]


# -- 3. a guild missing from a new session's READY drops its keys ----------------------------------


async def guild_keys(bot: RunningBot, guild: int) -> int:
    tag = f"{{{guild}}}"
    exists: int = await bot.redis.exists(f"guild_roles_ping:{tag}", f"guild_roles_ping_last_known:{tag}")
    return exists


async def test_a_guild_left_between_sessions_is_dropped_by_the_new_ready(
    gateway_bot: RunningBot, http: SandboxHttp, fixture: Fixture
) -> None:
    hq = guild_id(fixture, "Polly HQ")
    others = gateway_bot.bot_guild_ids() - {hq}
    assert await guild_keys(gateway_bot, hq) == 2
    events = {g: await gateway_bot.events(g) for g in others}

    # op 9 (not resumable): the sandbox forgets every session, and discord.py waits five
    # seconds before it IDENTIFYs again. The bot leaves Polly HQ meanwhile: its GUILD_DELETE
    # has no session to go to, so the new session's READY is the only place the bot can
    # learn it.
    await http.control("POST", "/_sandbox/gateway/invalidate-session")
    response, _ = await http.call("DELETE", f"/users/@me/guilds/{hq}")
    assert response.status == 204
    assert (await http.control("GET", "/_sandbox/gateway/sessions"))["sessions"] == []

    async def new_session() -> bool:
        sessions = (await http.control("GET", "/_sandbox/gateway/sessions"))["sessions"]
        return bool(sessions) and all(s["connected"] for s in sessions)

    await wait_until(new_session, within=20)

    async def dropped() -> bool:
        return await guild_keys(gateway_bot, hq) == 0

    await wait_until(dropped, within=15)
    assert not await gateway_bot.redis.sismember("bot_guilds", str(hq))
    # Every other guild is still cached, as Discord has it, and was not announced: its data
    # did not change.
    await wait_until(gateway_bot.all_cached, within=15)
    for guild in others:
        assert await guild_keys(gateway_bot, guild) == 2, guild
        assert await gateway_bot.redis.sismember("bot_guilds", str(guild)), guild
        assert await gateway_bot.events(guild) == events[guild], guild


async def test_a_guild_left_while_the_bot_was_stopped_is_dropped_at_its_start(
    bot_factory: Callable[[str], Awaitable[RunningBot]], http: SandboxHttp, redis_url: str, fixture: Fixture
) -> None:
    hq = guild_id(fixture, "Polly HQ")
    first = await bot_factory(redis_url)
    assert await guild_keys(first, hq) == 2
    first.stop.set()
    assert first.task is not None
    await asyncio.wait_for(first.task, timeout=20)

    response, _ = await http.call("DELETE", f"/users/@me/guilds/{hq}")  # while no bot runs
    assert response.status == 204
    second = await bot_factory(redis_url)  # a new session; returns once every guild it is in is cached

    async def dropped() -> bool:
        return await guild_keys(second, hq) == 0

    await wait_until(dropped, within=15)
    assert not await second.redis.sismember("bot_guilds", str(hq))
    for guild in second.bot_guild_ids():
        assert await guild_keys(second, guild) == 2, guild


# -- 4a. the bot: failures while applying a dispatch, and a recovery that fails -------------------


async def test_a_dispatch_that_fails_is_logged_and_the_next_one_applies(
    gateway_bot: RunningBot, http: SandboxHttp, fixture: Fixture, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="app.bot.sync")
    quiet = guild_id(fixture, "Quiet Corner")
    artists = role_id(fixture, "Quiet Corner", "Artists")
    helpers = role_id(fixture, "Quiet Corner", "Helpers")
    stream = f"guild_events:{{{quiet}}}"
    # A key of the wrong type where the guild's event stream goes (a shared Redis, another
    # program's key): Redis answers the bot's write with WRONGTYPE, which is no outage.
    await gateway_bot.redis.delete(stream)
    await gateway_bot.redis.set(stream, "not a stream")
    await http.control("PATCH", f"/_sandbox/guilds/{quiet}/roles/{artists}", {"name": "Painters"})
    await wait_until(
        logged(caplog, "Could not apply a gateway dispatch; continuing with the next."), within=15
    )
    assert any(record.exc_info for record in caplog.records)  # with its traceback

    # The bot is still applying dispatches: the next change is written and announced.
    await gateway_bot.redis.delete(stream)
    await http.control("PATCH", f"/_sandbox/guilds/{quiet}/roles/{helpers}", {"name": "Helping Hands"})
    [event] = await new_events(gateway_bot, quiet, 0, 1)
    assert (event["kind"], event["role_id"]) == ("ROLE_UPDATED", str(helpers))
    await wait_until(gateway_bot.all_cached, within=15)


@pytest_asyncio.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A redis-server of the test's own, to stop, restart or starve without touching others."""
    server = RedisServer(tmp_path / "redis")
    await server.start_async()
    try:
        yield server
    finally:
        await server.stop_async()


async def test_redis_refusing_writes_is_an_outage_the_bot_recovers_from(
    bot_factory: Callable[[str], Awaitable[RunningBot]],
    http: SandboxHttp,
    fixture: Fixture,
    own_redis: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="app.bot.sync")
    bot = await bot_factory(own_redis.url)
    sessions = (await http.control("GET", "/_sandbox/gateway/sessions"))["sessions"]
    playground = guild_id(fixture, "Polly Playground")
    seen = {g: len(await bot.events(g)) for g in bot.bot_guild_ids()}
    admin = redis.Redis.from_url(own_redis.url)
    try:
        # Out of memory: Redis answers (PING works) but refuses every write with OOM, one of
        # the answers the breaker counts as Redis being unable to do its job.
        await admin.config_set("maxmemory-policy", "noeviction")
        await admin.config_set("maxmemory", "1")
        _, role = await http.call("POST", f"/guilds/{playground}/roles", json={"name": "Under Pressure"})
        await wait_until(logged(caplog, "Redis is unavailable"), within=15)

        # The bot tries to recover: PING answers, then its resync is refused (the first write
        # of a resync is the SADD of bot_guilds). It must keep trying: two refused resyncs.
        async def refused_resyncs() -> bool:
            stats = await admin.info("commandstats")
            return int(stats.get("cmdstat_sadd", {}).get("rejected_calls", 0)) >= 2

        await wait_until(refused_resyncs, within=15)
        assert not await logged(caplog, "Redis is back; every guild was resynced.")()
        cached = await bot.cached(playground)
        assert cached is not None and int(role["id"]) not in cached.roles_by_id

        await admin.config_set("maxmemory", "0")  # memory again
        await wait_until(logged(caplog, "Redis is back; every guild was resynced."), within=15)
        await wait_until(bot.all_cached, within=15)
        cached = await bot.cached(playground)
        assert cached is not None and int(role["id"]) in cached.roles_by_id
        # The ROLE_CREATED was never written; the guild is announced as resynced instead. The
        # others did not change, so nothing is announced for them.
        for guild, count in seen.items():
            kinds = [e["kind"] for e in (await bot.events(guild))[count:]]
            assert kinds == (["GUILD_RESYNCED"] if guild == playground else []), guild
        after = (await http.control("GET", "/_sandbox/gateway/sessions"))["sessions"]
        assert [s["session_id"] for s in after] == [s["session_id"] for s in sessions]  # same session
    finally:
        await admin.aclose()


# -- 4b. the fill lock -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def commands_seen(url: str) -> AsyncIterator[list[str]]:
    """Every command the Redis at ``url`` runs from now on (MONITOR), as "GET key" strings."""
    client = redis.Redis.from_url(url)
    seen: list[str] = []
    try:
        async with client.monitor() as monitor:

            async def read() -> None:
                while True:
                    seen.append((await monitor.next_command())["command"])

            reader = asyncio.create_task(read())
            try:
                yield seen
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
    finally:
        await client.aclose()


def polled(seen: list[str], command: str) -> Callable[[], Awaitable[bool]]:
    async def ran() -> bool:
        return command in seen

    return ran


async def slow_channels(http: SandboxHttp) -> None:
    """The next fill's channels call takes 800 ms: a fill the test can act during."""
    fault = {"method": "GET", "route": "/guilds/{guild_id}/channels", "latency_ms": 800}
    await http.control("POST", "/_sandbox/faults", fault)


def answered(body: dict[str, Any]) -> list[str]:
    assert "errors" not in body, body
    assert "stale" not in body.get("extensions", {}), body  # fetched, not the last known copy
    return [role["name"] for role in body["data"]["pingableRoles"]]


async def test_a_fill_lock_whose_holder_died_runs_out_and_a_waiter_fills(
    api: RunningApi, redis_url: str, fixture: Fixture
) -> None:
    quiet = guild_id(fixture, "Quiet Corner")
    lock = f"fill_lock:{{{quiet}}}"
    client = redis.Redis.from_url(redis_url)
    try:
        # Another process took the lock and died: nobody will write the guild.
        await client.set(lock, "a process that died", px=30_000)
        async with commands_seen(redis_url) as seen:
            query = asyncio.create_task(api.query(PINGABLE, {"g": str(quiet)}))
            await wait_until(polled(seen, f"GET {lock}"), within=10)  # waiting on the lock
        assert api.calls_to(FILL_ROUTE) == 0
        await client.pexpire(lock, 1)  # its time runs out
        status, body = await query
        assert status == 200 and answered(body) == ["Helpers", "Artists"]
        assert api.calls_to(FILL_ROUTE) == 1  # the waiter filled, once
    finally:
        await client.aclose()


async def test_a_fill_whose_lock_was_taken_over_answers_and_leaves_the_new_lock(
    api: RunningApi, http: SandboxHttp, redis_url: str, fixture: Fixture
) -> None:
    quiet = guild_id(fixture, "Quiet Corner")
    lock = f"fill_lock:{{{quiet}}}"
    client = redis.Redis.from_url(redis_url)
    try:
        await slow_channels(http)
        query = asyncio.create_task(api.query(PINGABLE, {"g": str(quiet)}))

        async def filling() -> bool:
            return api.calls_to(FILL_ROUTE) > 0

        await wait_until(filling, within=10)
        assert await client.exists(lock)  # held by the API while it fetches
        # Its lock ran out (as when a fetch outlasts it) and another process took it.
        await client.set(lock, "another process", px=30_000)
        status, body = await query
        assert status == 200 and answered(body) == ["Helpers", "Artists"]
        assert await client.get(lock) == b"another process"  # the API did not release it
    finally:
        await client.aclose()


async def test_redis_failing_while_waiting_on_a_fill_lock_answers_from_discord(
    api_factory: Callable[..., Awaitable[RunningApi]], fixture: Fixture, own_redis: RedisServer
) -> None:
    api = await api_factory(redis_url=own_redis.url)
    quiet = guild_id(fixture, "Quiet Corner")
    lock = f"fill_lock:{{{quiet}}}"
    client = redis.Redis.from_url(own_redis.url)
    try:
        await client.set(lock, "another process", px=30_000)
    finally:
        await client.aclose()
    api.sandbox.stats.reset()
    async with commands_seen(own_redis.url) as seen:
        query = asyncio.create_task(api.query(PINGABLE, {"g": str(quiet)}))
        await wait_until(polled(seen, f"GET {lock}"), within=10)
    await own_redis.stop_async()  # while the API waits for the other process's fill
    status, body = await query
    assert status == 200 and answered(body) == ["Helpers", "Artists"]
    assert api.calls_to(FILL_ROUTE) == 1


async def test_redis_failing_during_a_fill_answers_with_that_one_fill(
    api_factory: Callable[..., Awaitable[RunningApi]],
    http: SandboxHttp,
    fixture: Fixture,
    own_redis: RedisServer,
) -> None:
    api = await api_factory(redis_url=own_redis.url)
    quiet = guild_id(fixture, "Quiet Corner")
    api.sandbox.stats.reset()
    await slow_channels(http)
    query = asyncio.create_task(api.query(PINGABLE, {"g": str(quiet)}))

    async def filling() -> bool:
        return api.calls_to(FILL_ROUTE) > 0

    await wait_until(filling, within=10)
    await own_redis.stop_async()  # the API holds the fill lock and waits for Discord
    status, body = await query
    assert status == 200 and answered(body) == ["Helpers", "Artists"]
    # Neither writing the result nor releasing the lock could reach Redis; what was fetched
    # is the answer, and it is not fetched a second time.
    assert api.calls_to(FILL_ROUTE) == 1


# -- 4c. the event hub: its pub/sub connection lost and back ---------------------------------------


@pytest_asyncio.fixture
async def subscribers() -> AsyncIterator[list[Subscriber]]:
    started: list[Subscriber] = []
    yield started
    for subscriber in started:
        await subscriber.stop()


# Subscribers made before every worker holds one: the kernel picks each socket's worker, and the
# chance that this many all go to one of two is 2**-39.
MOST_TRIES = 40


async def on_every_worker(
    started: list[Subscriber], api: RunningApi, variables: dict[str, Any]
) -> list[Subscriber]:
    """Subscribers of ``variables`` on ``api`` until every worker serves at least one (one, with
    one worker): each worker's hub has a pub/sub connection of its own. All of them, in order."""
    made: list[Subscriber] = []
    serving: set[int] = set()
    while len(serving) < len(api.workers):
        assert len(made) < MOST_TRIES, f"{len(made)} subscribers, all on workers {serving}"
        subscriber = await subscribe(started, api, variables)
        made.append(subscriber)
        websocket = subscriber.transport.adapter.websocket
        assert websocket is not None, subscriber.error
        serving.add(api.worker_of(websocket.local_address))
    return made


async def messages_until(subscriber: Subscriber, kind: str) -> list[dict[str, Any]]:
    """What the subscriber receives, up to and including the first message of ``kind``."""
    received = [await subscriber.next(within=20)]
    while received[-1]["kind"] != kind:
        received.append(await subscriber.next(within=20))
    return received


@pytest.mark.workers_1_and_2
async def test_subscribers_resync_when_the_pubsub_connection_is_killed(
    gateway_bot: RunningBot,
    api: RunningApi,
    http: SandboxHttp,
    subscribers: list[Subscriber],
    fixture: Fixture,
) -> None:
    playground = guild_id(fixture, "Polly Playground")
    watching = await on_every_worker(subscribers, api, {"g": str(playground)})
    await held(api, playground, count=len(api.workers))

    # Redis drops the API's pub/sub connections (an operator, a proxy, a failover), each
    # worker's; the change that follows is announced while the API may not be subscribed.
    killed = await gateway_bot.redis.client_kill_filter(_type="pubsub")
    assert killed >= len(api.workers)
    pingable = {"mentionable": True}
    _, during = await http.call("POST", f"/guilds/{playground}/roles", json={"name": "During", **pingable})
    for subscriber in watching:
        resynced = await subscriber.next(within=20)
        assert (resynced["kind"], resynced["roleId"]) == ("GUILD_RESYNCED", None)

    # Each subscriber's view ends up current: the resync lists the new role, or (when the bot
    # announced it only after the API had subscribed again) its ROLE_CREATED follows.
    async def current() -> bool:
        return all("During" in [r["name"] for r in s.received[-1]["pingableRoles"]] for s in watching)

    await wait_until(current, within=20)

    # Subscribed again: live events flow as before.
    await held(api, playground, count=len(api.workers))
    _, after = await http.call("POST", f"/guilds/{playground}/roles", json={"name": "After", **pingable})
    for subscriber in watching:
        live = await subscriber.next(within=20)
        while live["roleId"] != after["id"]:
            assert (live["kind"], live["roleId"]) == ("ROLE_CREATED", during["id"]), live
            live = await subscriber.next(within=20)
        assert live["kind"] == "ROLE_CREATED"
        assert {"id": after["id"], "name": "After"} in live["pingableRoles"]


@pytest.mark.workers_1_and_2
async def test_subscribers_resync_after_the_apis_redis_restarts(
    api_factory: Callable[..., Awaitable[RunningApi]],
    subscribers: list[Subscriber],
    fixture: Fixture,
    own_redis: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="app.live.hub")
    # No bot here: nothing else announces GUILD_RESYNCED when Redis comes back, so what the
    # subscribers get is their hubs' own doing (a subscriber on each worker, each its hub's).
    api = await api_factory(redis_url=own_redis.url)
    quiet = guild_id(fixture, "Quiet Corner")
    watching = await on_every_worker(subscribers, api, {"g": str(quiet)})
    await held(api, quiet, count=len(api.workers))

    await own_redis.stop_async()
    workers = len(api.workers)
    await wait_until(logged(caplog, "Lost the Redis event subscription", workers), within=15)
    await own_redis.start_async()
    for subscriber in watching:
        resynced = await subscriber.next(within=30)
        assert resynced["kind"] == "GUILD_RESYNCED" and resynced["roleId"] is None
        assert [r["name"] for r in resynced["pingableRoles"]] == ["Helpers", "Artists"]
    assert await logged(caplog, "The Redis event subscription is back; subscribers resync.", workers)()
    await held(api, quiet, count=workers)  # subscribed again on the restarted server


@pytest.mark.workers_1_and_2
async def test_a_malformed_announcement_is_skipped_and_events_keep_flowing(
    gateway_bot: RunningBot,
    api: RunningApi,
    http: SandboxHttp,
    subscribers: list[Subscriber],
    fixture: Fixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="app.live.hub")
    quiet = guild_id(fixture, "Quiet Corner")
    artists = role_id(fixture, "Quiet Corner", "Artists")
    watching = await on_every_worker(subscribers, api, {"g": str(quiet)})
    workers = len(api.workers)
    await held(api, quiet, count=workers)
    # Something else publishes on the guild's channel (an older bot, a mistake): every
    # worker's hub gets it.
    assert await gateway_bot.redis.publish(f"guild_events:{quiet}", b"{not json") == workers
    await wait_until(logged(caplog, "Ignoring a malformed event", workers), within=10)
    await http.control("PATCH", f"/_sandbox/guilds/{quiet}/roles/{artists}", {"name": "Painters"})
    for subscriber in watching:
        change = await subscriber.next(within=20)
        assert (change["kind"], change["roleId"]) == ("ROLE_UPDATED", str(artists))
        assert len(subscriber.received) == 1  # the malformed one reached nobody
