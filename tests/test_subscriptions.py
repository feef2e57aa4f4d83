"""guildRolesChanged over real WebSockets and SSE, with the bot writing through a real Redis."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
import websockets
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport
from prometheus_client import REGISTRY

from app.sandbox.fixture import Fixture
from app.sandbox.server import Sandbox
from tests.conftest import (
    TEST_SECRET_KEY,
    RunningApi,
    RunningBot,
    SandboxHttp,
    create_key,
    guild_id,
    revoke_key,
    role_id,
    until_closed,
    wait_until,
)
from tests.processes import announced

pytestmark = [pytest.mark.timeout(90), pytest.mark.workers_1_and_2]


CHANGES = """subscription Changes($g: ID!, $c: ID, $since: String) {
  guildRolesChanged(guildId: $g, channelId: $c, since: $since) {
    guildId kind roleId version eventId at pingableRoles { id name }
  }
}"""


def ws_url(api: RunningApi | str) -> str:
    """A running API's WebSocket URL, or that of an API process at ``api`` (its http URL)."""
    return api.replace("http", "ws", 1) + "/graphql" if isinstance(api, str) else api.ws_url


class Subscriber:
    """A gql client on one subscription, collecting what it receives."""

    def __init__(
        self,
        url: str,
        variables: dict[str, Any],
        protocol: str,
        query: str = CHANGES,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.transport = WebsocketsTransport(url=url, subprotocols=[protocol], headers=headers)
        self.variables = variables
        self.query = query
        self.received: list[dict[str, Any]] = []
        self.arrivals: list[float] = []
        self.error: Exception | None = None
        self._taken = 0
        self._new = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self, held: Callable[[], bool] | None = None) -> Subscriber:
        """Connect and subscribe; with ``held``, also wait until the server holds the subscription.

        graphql-transport-ws never acknowledges a subscribe, so ``held`` asks the server
        itself. A subscription the server answered (data, or an error) counts as held too.
        """
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)
        if held is not None:

            async def answered() -> bool:
                return held() or bool(self.received) or self.error is not None

            await wait_until(answered, within=10)
        return self

    async def _run(self) -> None:
        try:
            async with Client(transport=self.transport) as session:
                self._ready.set()  # connected and acknowledged
                request = GraphQLRequest(self.query, variable_values=self.variables)
                async for result in session.subscribe(request):
                    self.received.append(result["guildRolesChanged"])
                    self.arrivals.append(time.monotonic())
                    self._new.set()
        except Exception as error:  # kept for the test to look at
            self.error = error
            self._ready.set()
            self._new.set()

    async def next(self, within: float = 10.0) -> dict[str, Any]:
        """The next message not yet taken, waiting for it if need be."""
        async with asyncio.timeout(within):
            while len(self.received) <= self._taken:
                if self.error is not None:
                    raise self.error
                self._new.clear()
                await self._new.wait()
        self._taken += 1
        return self.received[self._taken - 1]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


@pytest_asyncio.fixture
async def subscribers() -> AsyncIterator[list[Subscriber]]:
    started: list[Subscriber] = []
    yield started
    for subscriber in started:
        await subscriber.stop()


async def subscribe(
    started: list[Subscriber],
    target: RunningApi | str,
    variables: dict[str, Any],
    protocol: str = "graphql-transport-ws",
    query: str = CHANGES,
    headers: dict[str, str] | None = None,
) -> Subscriber:
    """Subscribe to ``target``: a running API (with its key) or a WebSocket URL."""
    if isinstance(target, RunningApi):
        url, headers = ws_url(target), headers or target.auth
    else:
        url = target
    held: Callable[[], bool] | None = None
    if isinstance(target, RunningApi):
        api = target
        before = api.subscribers

        def held() -> bool:
            return api.subscribers > before

    subscriber = await Subscriber(url, variables, protocol, query, headers).start(held)
    started.append(subscriber)
    return subscriber


async def held(api: RunningApi, guild: int, count: int = 1) -> None:
    """Wait until every worker with subscribers of the guild holds the guild's Redis
    subscription (so events reach them), and at least ``count`` do."""
    redis = api.services.redis

    async def subscribed() -> bool:
        numbers = await redis.pubsub_numsub(channel(api, guild))
        listening = sum(services.hub.listens_to(guild) for services in api.every_services)
        return bool(numbers and numbers[0][1] >= max(count, listening))

    await wait_until(subscribed, within=5)


def channel(api: RunningApi, guild: int) -> str:
    """The guild's pub/sub channel, as the API names it."""
    return api.services.hub.channel(guild)


async def test_a_change_arrives_with_the_new_list(
    gateway_bot: RunningBot,
    api: RunningApi,
    http: SandboxHttp,
    subscribers: list[Subscriber],
    fixture: Fixture,
) -> None:
    playground = guild_id(fixture, "Polly Playground")
    subscriber = await subscribe(subscribers, api, {"g": str(playground)})
    await held(api, playground)

    # How soon is bench/fanout's business; here, that it arrives, and what it says.
    response, role = await http.call(
        "POST", f"/guilds/{playground}/roles", json={"name": "Live Ping", "mentionable": True}
    )
    assert response.status == 200
    change = await subscriber.next()
    assert change["kind"] == "ROLE_CREATED" and change["roleId"] == role["id"]
    assert change["guildId"] == str(playground) and change["eventId"]
    assert {"id": role["id"], "name": "Live Ping"} in change["pingableRoles"]

    await http.call("PATCH", f"/guilds/{playground}/roles/{role['id']}", json={"name": "Live Pong"})
    renamed = await subscriber.next()
    assert renamed["kind"] == "ROLE_UPDATED" and renamed["version"] > change["version"]
    assert "Live Pong" in [r["name"] for r in renamed["pingableRoles"]]


async def test_the_legacy_graphql_ws_protocol_works_too(
    gateway_bot: RunningBot,
    api: RunningApi,
    http: SandboxHttp,
    subscribers: list[Subscriber],
    fixture: Fixture,
) -> None:
    quiet = guild_id(fixture, "Quiet Corner")
    artists = role_id(fixture, "Quiet Corner", "Artists")
    subscriber = await subscribe(subscribers, api, {"g": str(quiet)}, protocol="graphql-ws")
    await held(api, quiet)
    await http.control("PATCH", f"/_sandbox/guilds/{quiet}/roles/{artists}", {"name": "Painters"})
    change = await subscriber.next()
    assert change["kind"] == "ROLE_UPDATED" and "Painters" in [r["name"] for r in change["pingableRoles"]]


async def test_since_replays_exactly_the_missed_changes_in_order(
    gateway_bot: RunningBot,
    api: RunningApi,
    http: SandboxHttp,
    subscribers: list[Subscriber],
    fixture: Fixture,
) -> None:
    playground = guild_id(fixture, "Polly Playground")
    first = await subscribe(subscribers, api, {"g": str(playground)})
    await held(api, playground)
    _, role = await http.call("POST", f"/guilds/{playground}/roles", json={"name": "Seen"})
    seen = await first.next()
    await first.stop()

    # Missed while away: three changes.
    await http.call("PATCH", f"/guilds/{playground}/roles/{role['id']}", json={"name": "Missed 1"})
    await http.call("PATCH", f"/guilds/{playground}/roles/{role['id']}", json={"name": "Missed 2"})
    await http.call("DELETE", f"/guilds/{playground}/roles/{role['id']}")

    async def all_written() -> bool:
        return len(await gateway_bot.events(playground)) >= 4

    await wait_until(all_written, within=10)
    back = await subscribe(subscribers, api, {"g": str(playground), "since": seen["eventId"]})
    replayed = [await back.next() for _ in range(3)]
    assert [c["kind"] for c in replayed] == ["ROLE_UPDATED", "ROLE_UPDATED", "ROLE_DELETED"]
    versions = [c["version"] for c in replayed]
    assert versions == sorted(versions) and versions[0] > seen["version"]
    # Then live.
    await held(api, playground)
    _, later = await http.call("POST", f"/guilds/{playground}/roles", json={"name": "Live Again"})
    live = await back.next()
    assert (live["kind"], live["roleId"]) == ("ROLE_CREATED", later["id"])
    assert len(back.received) == 4  # nothing twice


async def test_a_since_no_longer_kept_starts_with_a_resync(
    gateway_bot: RunningBot, api: RunningApi, subscribers: list[Subscriber], fixture: Fixture
) -> None:
    quiet = guild_id(fixture, "Quiet Corner")
    subscriber = await subscribe(subscribers, api, {"g": str(quiet), "since": "1-0"})
    first = await subscriber.next()
    assert first["kind"] == "GUILD_RESYNCED" and first["roleId"] is None
    assert [r["name"] for r in first["pingableRoles"]] == ["Helpers", "Artists"]


async def test_bad_subscriptions_get_errors_with_codes(
    gateway_bot: RunningBot, api: RunningApi, subscribers: list[Subscriber], fixture: Fixture
) -> None:
    quiet = guild_id(fixture, "Quiet Corner")
    for variables, code in (
        ({"g": "424242"}, "NOT_FOUND"),
        ({"g": "nope"}, "BAD_USER_INPUT"),
        ({"g": str(quiet), "since": "yesterday"}, "BAD_USER_INPUT"),
        ({"g": str(quiet), "c": str(channel_in_other_guild(fixture))}, "BAD_USER_INPUT"),
    ):
        subscriber = await subscribe(subscribers, api, variables)
        with pytest.raises(TransportQueryError) as raised:
            await subscriber.next()
        assert raised.value.errors is not None
        assert raised.value.errors[0]["extensions"]["code"] == code


def channel_in_other_guild(fixture: Fixture) -> int:
    return next(
        c.id for g in fixture.guilds if g.name == "Polly Playground" for c in g.channels if c.name == "polls"
    )


async def test_protocol_errors_close_with_the_protocols_codes(api_factory: Any) -> None:
    api: RunningApi = await api_factory(connection_init_timeout=0.5)
    url = ws_url(api)
    async with websockets.connect(
        url, subprotocols=["graphql-transport-ws"], additional_headers=api.auth
    ) as ws:
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "{ apiVersion }"}}))
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 4401  # subscribe before connection_init
    async with websockets.connect(
        url, subprotocols=["graphql-transport-ws"], additional_headers=api.auth
    ) as ws:
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 4408  # no connection_init in time
    async with websockets.connect(
        url, subprotocols=["graphql-transport-ws"], additional_headers=api.auth
    ) as ws:
        await ws.send("not json")
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 4400
    async with websockets.connect(
        url, subprotocols=["graphql-transport-ws"], additional_headers=api.auth
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv())["type"] == "pong"
        await ws.send(json.dumps({"id": "q", "type": "subscribe", "payload": {"query": "{ apiVersion }"}}))
        assert json.loads(await ws.recv())["payload"] == {"data": {"apiVersion": "0.1.0"}}


async def test_sse_delivers_changes(
    gateway_bot: RunningBot, api: RunningApi, http: SandboxHttp, fixture: Fixture
) -> None:
    quiet = guild_id(fixture, "Quiet Corner")
    helpers = role_id(fixture, "Quiet Corner", "Helpers")
    body = {"query": CHANGES, "variables": {"g": str(quiet)}}
    headers = {"Accept": "text/event-stream"}
    async with api.client.stream("POST", "/graphql", json=body, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        await held(api, quiet)
        await http.control("PATCH", f"/_sandbox/guilds/{quiet}/roles/{helpers}", {"name": "Helpers!"})
        change: dict[str, Any] | None = None
        async with asyncio.timeout(10):
            async for line in response.aiter_lines():
                if line.startswith("data:") and "ROLE_UPDATED" in line:
                    change = json.loads(line[5:])["data"]["guildRolesChanged"]
                    break
    assert change is not None, "the stream ended before the change arrived"
    assert "Helpers!" in [r["name"] for r in change["pingableRoles"]]


async def test_one_redis_subscription_per_guild_per_process(
    gateway_bot: RunningBot, api: RunningApi, subscribers: list[Subscriber], fixture: Fixture
) -> None:
    playground = guild_id(fixture, "Polly Playground")
    channels = [c.id for g in fixture.guilds if g.id == playground for c in g.channels if c.type == 0]
    for n in range(12):
        variables = (
            {"g": str(playground)} if n % 2 else {"g": str(playground), "c": str(channels[n % len(channels)])}
        )
        await subscribe(subscribers, api, variables)
    await held(api, playground)
    await joined(api, 12)
    # One per worker that holds subscribers of the guild, however many it holds.
    serving = sum(services.streaming.fanout.subscribers > 0 for services in api.every_services)
    assert serving == len(api.workers)  # 12 connections: each worker got some (all but surely)
    assert api.hub_guilds == serving
    numbers = await api.services.redis.pubsub_numsub(channel(api, playground))
    assert numbers[0][1] == serving


async def joined(api: RunningApi, count: int) -> None:
    """Wait until ``count`` subscribers have joined the API's shared subscriptions."""

    async def all_in() -> bool:
        return api.subscribers == count

    await wait_until(all_in, within=5)


async def test_a_subscriber_on_another_process_gets_the_same_events(
    gateway_bot: RunningBot,
    api: RunningApi,
    http: SandboxHttp,
    sandbox: Sandbox,
    redis_url: str,
    subscribers: list[Subscriber],
    fixture: Fixture,
) -> None:
    env = {
        **os.environ,
        "POLLY_DISCORD_API_URL": sandbox.api_url,
        "POLLY_DISCORD_TOKEN": sandbox.fixture.bot.token,
        "POLLY_REDIS_URL": redis_url,
        "POLLY_LOG_LEVEL": "WARNING",
        # The same database as the first API, so the same key works on both.
        "POLLY_SECRET_KEY": TEST_SECRET_KEY,
        "POLLY_DATA_DIR": str(api.settings.data_dir),
    }
    async with announced(sys.executable, "-m", "app", "api", "--port", "0", env=env) as other:
        playground = guild_id(fixture, "Polly Playground")
        here = await subscribe(subscribers, api, {"g": str(playground)})
        there = await subscribe(subscribers, ws_url(other.url), {"g": str(playground)}, headers=api.auth)
        await held(api, playground, count=2)
        _, role = await http.call("POST", f"/guilds/{playground}/roles", json={"name": "Everywhere"})
        a, b = await here.next(), await there.next()
        assert a == b and a["roleId"] == role["id"]


async def test_a_slow_subscriber_gets_a_resync_and_never_delays_a_fast_one(
    gateway_bot: RunningBot,
    api_factory: Any,
    http: SandboxHttp,
    subscribers: list[Subscriber],
    fixture: Fixture,
) -> None:
    api: RunningApi = await api_factory(subscriber_buffer_limit=16 * 1024)
    big = guild_id(fixture, "Big Guild")
    variables = {"g": str(big)}
    # Large messages (all 124 pingable roles with every field), so that the kernel's socket
    # buffers fill and the server's own buffer for the slow socket grows past its bound.
    query = CHANGES.replace(
        "pingableRoles { id name }",
        "pingableRoles { id name color position permissions mentionable managed hoist unicodeEmoji "
        "colors { primaryColor secondaryColor tertiaryColor } "
        "tags { botId integrationId premiumSubscriber } }",
    )
    fast = await subscribe(subscribers, api, variables, query=query)

    # The slow one: a small receive buffer, and it stops reading after subscribing.
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", int(api.url.rsplit(":", 1)[1])))
    raw.setblocking(False)
    slow = await websockets.connect(
        ws_url(api), sock=raw, subprotocols=["graphql-transport-ws"], additional_headers=api.auth, max_queue=1
    )
    await slow.send(json.dumps({"type": "connection_init"}))
    assert json.loads(await slow.recv())["type"] == "connection_ack"
    await slow.send(
        json.dumps({"id": "s", "type": "subscribe", "payload": {"query": query, "variables": variables}})
    )
    await held(api, big)
    await joined(api, 2)

    roles = [r.id for g in fixture.guilds if g.id == big for r in g.roles if not r.managed and r.id != big]
    queued = REGISTRY.get_sample_value("polly_fanout_messages_total", {"path": "queued"}) or 0.0
    changes = 250
    for n in range(changes):
        await http.control(
            "PATCH", f"/_sandbox/guilds/{big}/roles/{roles[n % len(roles)]}", {"name": f"Churn {n}"}
        )
    # The fast one gets every change while the slow one has read nothing: never held up by it.
    async with asyncio.timeout(60):
        while len(fast.received) < changes:
            await fast.next(within=30)
    assert [c["kind"] for c in fast.received] == ["ROLE_UPDATED"] * changes
    # Once the slow socket's transport paused writing, its messages went the queued way.
    assert (REGISTRY.get_sample_value("polly_fanout_messages_total", {"path": "queued"}) or 0.0) > queued

    # The slow one now reads: what was already on its way, then one resync, not the backlog.
    kinds = []
    try:
        async with asyncio.timeout(5):
            while "GUILD_RESYNCED" not in kinds:
                message = json.loads(await slow.recv())
                if message["type"] == "next":
                    kinds.append(message["payload"]["data"]["guildRolesChanged"]["kind"])
    except TimeoutError:
        raise AssertionError(f"no resync; the slow subscriber received {kinds}") from None
    finally:
        await slow.close()
    assert kinds.count("GUILD_RESYNCED") == 1
    assert len(kinds) < changes


async def test_subscribers_with_the_same_since_each_get_their_replay(
    gateway_bot: RunningBot,
    api: RunningApi,
    http: SandboxHttp,
    subscribers: list[Subscriber],
    fixture: Fixture,
) -> None:
    quiet = guild_id(fixture, "Quiet Corner")
    helpers = role_id(fixture, "Quiet Corner", "Helpers")
    first = await subscribe(subscribers, api, {"g": str(quiet)})
    await held(api, quiet)
    await http.control("PATCH", f"/_sandbox/guilds/{quiet}/roles/{helpers}", {"name": "Helpers 0"})
    cursor = (await first.next())["eventId"]
    for n in (1, 2, 3):
        await http.control("PATCH", f"/_sandbox/guilds/{quiet}/roles/{helpers}", {"name": f"Helpers {n}"})
    for _ in range(3):
        await first.next()
    # As pages do after an API restart: the same since, one after the other.
    for _ in range(2):
        again = await subscribe(subscribers, api, {"g": str(quiet), "since": cursor})
        replayed = [await again.next() for _ in range(3)]
        # The same three changes the first subscriber saw live (each with the list as it is now).
        assert [(c["kind"], c["roleId"], c["version"], c["eventId"]) for c in replayed] == [
            (c["kind"], c["roleId"], c["version"], c["eventId"]) for c in first.received[1:4]
        ]
    # All of them live now, each once.
    await http.control("PATCH", f"/_sandbox/guilds/{quiet}/roles/{helpers}", {"name": "Helpers 4"})
    for subscriber in subscribers:
        assert (await subscriber.next())["pingableRoles"][0]["name"] == "Helpers 4"
    assert [len(s.received) for s in subscribers] == [5, 4, 4]


async def test_an_impossible_since_is_bad_input_and_keeps_the_cache_up(
    gateway_bot: RunningBot, api: RunningApi, subscribers: list[Subscriber], fixture: Fixture
) -> None:
    quiet = guild_id(fixture, "Quiet Corner")
    subscriber = await subscribe(subscribers, api, {"g": str(quiet), "since": "99999999999999999999-0"})
    with pytest.raises(TransportQueryError) as raised:
        await subscriber.next()
    assert (
        raised.value.errors is not None and raised.value.errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
    )
    api.sandbox.stats.reset()
    _, body = await api.query("query($g: ID!) { pingableRoles(guildId: $g) { name } }", {"g": str(quiet)})
    assert "extensions" not in body and api.rest_calls() == 0


async def test_clients_that_leave_during_setup_leave_nothing_behind(
    gateway_bot: RunningBot,
    api: RunningApi,
    http: SandboxHttp,
    subscribers: list[Subscriber],
    fixture: Fixture,
) -> None:
    quiet = guild_id(fixture, "Quiet Corner")
    artists = role_id(fixture, "Quiet Corner", "Artists")
    subscribe_message = {
        "id": "1",
        "type": "subscribe",
        "payload": {"query": CHANGES, "variables": {"g": str(quiet)}},
    }
    for pause in (0, 0.001, 0.005, 0.02):
        for _ in range(3):
            async with websockets.connect(
                ws_url(api), subprotocols=["graphql-transport-ws"], additional_headers=api.auth
            ) as ws:
                await ws.send(json.dumps({"type": "connection_init"}))
                await ws.recv()
                await ws.send(json.dumps(subscribe_message))
                await asyncio.sleep(pause)

    async def nothing_left() -> bool:
        return api.hub_guilds == 0 and api.subscribers == 0

    await wait_until(nothing_left, within=5)
    # And the guild is still subscribed to when someone comes back.
    subscriber = await subscribe(subscribers, api, {"g": str(quiet)})
    await held(api, quiet)
    await http.control("PATCH", f"/_sandbox/guilds/{quiet}/roles/{artists}", {"name": "Sculptors"})
    # The change arrives (after, perhaps, one the guild's Redis subscription caught on its way in).
    names: list[str] = []
    async with asyncio.timeout(10):
        while "Sculptors" not in names:
            names = [r["name"] for r in (await subscriber.next())["pingableRoles"]]


async def test_queries_on_a_long_lived_socket_see_fresh_data(
    gateway_bot: RunningBot, api: RunningApi, http: SandboxHttp, fixture: Fixture
) -> None:
    quiet = guild_id(fixture, "Quiet Corner")
    artists = role_id(fixture, "Quiet Corner", "Artists")
    query = {
        "query": "query($g: ID!) { pingableRoles(guildId: $g) { name } }",
        "variables": {"g": str(quiet)},
    }
    async with websockets.connect(
        ws_url(api), subprotocols=["graphql-transport-ws"], additional_headers=api.auth
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        await ws.recv()

        async def names(operation: str) -> list[str]:
            await ws.send(json.dumps({"id": operation, "type": "subscribe", "payload": query}))
            while True:
                message = json.loads(await ws.recv())
                if message["type"] == "next" and message["id"] == operation:
                    return [r["name"] for r in message["payload"]["data"]["pingableRoles"]]

        assert await names("a") == ["Helpers", "Artists"]
        await http.control("PATCH", f"/_sandbox/guilds/{quiet}/roles/{artists}", {"name": "Potters"})

        async def renamed() -> bool:
            return "Potters" in await names(f"b{time.monotonic()}")

        await wait_until(renamed, within=10)


async def test_the_legacy_protocol_enforces_the_init_timeout_too(api_factory: Any) -> None:
    api: RunningApi = await api_factory(connection_init_timeout=0.5)
    async with websockets.connect(
        ws_url(api), subprotocols=["graphql-ws"], additional_headers=api.auth
    ) as ws:
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 4408


async def test_a_revoked_keys_sockets_are_closed(
    gateway_bot: RunningBot, api_factory: Any, redis_url: str, fixture: Fixture
) -> None:
    api: RunningApi = await api_factory(api_key_cache_ttl=1)
    quiet = guild_id(fixture, "Quiet Corner")
    token = await create_key(api.settings, [quiet], ["roles:read"])
    subscribe_message = {
        "id": "1",
        "type": "subscribe",
        "payload": {"query": CHANGES, "variables": {"g": str(quiet)}},
    }
    async with websockets.connect(ws_url(api), subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {
                    **subscribe_message,
                    "payload": {
                        **subscribe_message["payload"],
                        "variables": {"g": str(quiet), "since": "0-0"},
                    },
                }
            )
        )
        first = json.loads(await ws.recv())
        assert (
            first["type"] == "next"
            and first["payload"]["data"]["guildRolesChanged"]["kind"] == "GUILD_RESYNCED"
        )

        await revoke_key(api.settings, redis_url, token)
        await until_closed(ws, within=10)
        assert ws.close_code == 4403
        assert ws.close_reason is not None and "revoked" in ws.close_reason
