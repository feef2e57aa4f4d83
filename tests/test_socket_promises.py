"""Promises the README makes about long-lived connections that no other test would catch
breaking: identical subscriptions share one execution, the protocols' 4409 and keep-alives, a
socket closed with 4403 when its login ends or its user's guilds change, and a user's last
guild list standing in for a Discord that cannot answer — for a while, then no longer.

Everything runs against the real parts: the API on a loopback socket, raw ``websockets``
clients, the test's own redis-server, and the sandbox for Discord (OAuth logins included).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
import pytest_asyncio
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from app.graphql.fanout import Group, GroupKey
from app.sandbox.fixture import Fixture
from app.settings import Settings
from tests.conftest import RunningApi, RunningBot, SandboxHttp, guild_id, role_id, until_closed, wait_until
from tests.test_access_matrix import Answer, log_in, over_http, user_caller
from tests.test_subscriptions import held

pytestmark = [pytest.mark.timeout(90), pytest.mark.workers_1_and_2]

TRANSPORT = "graphql-transport-ws"
LEGACY = "graphql-ws"
# What each protocol's server sends to keep an idle socket alive.
KEEP_ALIVE = {TRANSPORT: "ping", LEGACY: "ka"}
# Generous: waits end as soon as what they wait for happens; this only bounds a broken run.
WITHIN = 30.0

CHANGES = """subscription($g: ID!, $c: ID, $since: String) {
  guildRolesChanged(guildId: $g, channelId: $c, since: $since) {
    guildId kind roleId eventId pingableRoles { id name }
  }
}"""
GUILD_ROLES = "query($g: ID!) { guildRoles(guildId: $g) { id name } }"
# The call a user's guild list is refreshed with (and, were the token expired, the refresh).
GUILD_LIST = "GET /users/@me/guilds"
TOKEN = "POST /oauth2/token"


class Socket:
    """One raw WebSocket on /graphql in either protocol; keep-alives are counted, not returned."""

    def __init__(self, ws: ClientConnection, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self.keep_alives = 0
        self.probes = 0

    async def receive(self) -> dict[str, Any]:
        """The next message that is not a keep-alive."""
        async with asyncio.timeout(WITHIN):
            while True:
                message: dict[str, Any] = json.loads(await self.ws.recv())
                if message["type"] != KEEP_ALIVE[self.protocol]:
                    return message
                self.keep_alives += 1

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def start(self, operation: str, query: str, variables: dict[str, Any] | None = None) -> None:
        kind = "subscribe" if self.protocol == TRANSPORT else "start"
        payload = {"query": query, "variables": variables or {}}
        await self.send({"id": operation, "type": kind, "payload": payload})

    async def change(self, operation: str = "1") -> dict[str, Any]:
        """The next guildRolesChanged message of ``operation`` (nothing else may come first)."""
        message = await self.receive()
        assert message["type"] in ("next", "data") and message["id"] == operation, message
        change: dict[str, Any] = message["payload"]["data"]["guildRolesChanged"]
        return change

    async def answers(self, guild: int) -> None:
        """The server still answers on this socket (so it was not closed, nor is about to be)."""
        if self.protocol == TRANSPORT:
            await self.send({"type": "ping"})
            assert (await self.receive())["type"] == "pong"
            return
        # The legacy protocol has neither a client ping nor queries (Strawberry runs only
        # subscriptions on it): a subscription's first answer, then it is stopped.
        self.probes += 1
        probe = f"probe {self.probes}"
        await self.start(probe, CHANGES, {"g": str(guild), "since": "0-0"})
        assert (await self.change(probe))["kind"] == "GUILD_RESYNCED"
        await self.send({"id": probe, "type": "stop"})
        assert await self.receive() == {"type": "complete", "id": probe}


@pytest_asyncio.fixture
async def open_socket() -> AsyncIterator[Callable[..., Awaitable[Socket]]]:
    """Opens acknowledged sockets (with the API's key unless ``headers`` say otherwise) and
    closes them after the test."""
    opened: list[Socket] = []

    async def open_one(
        target: RunningApi, protocol: str = TRANSPORT, headers: dict[str, str] | None = None
    ) -> Socket:
        ws = await websockets.connect(
            target.ws_url,
            subprotocols=[Subprotocol(protocol)],
            additional_headers=target.auth if headers is None else headers,
        )
        socket = Socket(ws, protocol)
        opened.append(socket)
        await socket.send({"type": "connection_init"})
        ack = await socket.receive()
        assert ack["type"] == "connection_ack", ack
        return socket

    yield open_one
    for socket in opened:
        await socket.ws.close()


async def lookups(api: RunningApi) -> int:
    """Reads of guild data this API process made from Redis (hits and misses, one per key of
    each MGET), as its cache reports them (README: ``get_cache_stats()``).

    Nothing counts executions of a subscription as such; but its resolver reads the guild once
    for each change it describes (RoleService.guild), so this counts executions, and serializing
    is part of each. The gateway bot's reads and writes go to a cache object of its own."""
    total = 0
    for services in api.every_services:
        counters = (await services.role_cache.get_cache_stats())["counters"]
        total += int(counters["hits"]) + int(counters["misses"])
    return total


def groups(api: RunningApi) -> list[Group]:
    """Every worker's shared subscriptions: a subscription asked on several workers runs on each."""
    return [group for services in api.every_services for group in services.streaming.fanout.groups.values()]


def group_sizes(api: RunningApi) -> list[int]:
    """Subscribers per distinct subscription, over every worker."""
    sizes: Counter[GroupKey] = Counter()
    for group in groups(api):
        sizes[group.key] += len(group.members)
    return sorted(sizes.values())


async def rename(http: SandboxHttp, guild: int, role: int, name: str) -> None:
    """A change as the guild's owner makes it: the sandbox dispatches it and the bot publishes it."""
    await http.control("PATCH", f"/_sandbox/guilds/{guild}/roles/{role}", {"name": name})


# -- 1. identical subscriptions share one execution ---------------------------------------------

SUBSCRIBERS = 8


async def test_identical_subscriptions_share_one_execution_per_change(
    gateway_bot: RunningBot,
    api: RunningApi,
    http: SandboxHttp,
    open_socket: Callable[..., Awaitable[Socket]],
    fixture: Fixture,
) -> None:
    quiet = guild_id(fixture, "Quiet Corner")
    helpers = role_id(fixture, "Quiet Corner", "Helpers")
    subscribers = []
    for n in range(SUBSCRIBERS):
        socket = await open_socket(api)
        # Two different `since`s, neither kept: each subscriber gets its own resync first (its
        # private replay), and `since` is no part of what the group runs, so all share one.
        await socket.start("1", CHANGES, {"g": str(quiet), "since": "0-0" if n % 2 else "1-0"})
        assert (await socket.change())["kind"] == "GUILD_RESYNCED"
        subscribers.append(socket)
    await held(api, quiet)  # the live execution(s) listen: a change from now on reaches them

    # One change that all receive: every execution serving them is live past its first read.
    await rename(http, quiet, helpers, "Helpers warm")
    for socket in subscribers:
        assert (await socket.change())["kind"] == "ROLE_UPDATED"

    before = await lookups(api)
    changes = 3
    for n in range(changes):
        await rename(http, quiet, helpers, f"Shared {n}")
        received = [await socket.change() for socket in subscribers]
        # Every subscriber still gets the change, and the same one.
        assert all(change == received[0] for change in received), received
        assert received[0]["kind"] == "ROLE_UPDATED" and received[0]["roleId"] == str(helpers)
        assert f"Shared {n}" in [role["name"] for role in received[0]["pingableRoles"]]
    # One read of the guild per change — the group's one execution (on each worker serving
    # some of them) — not one per subscriber (SUBSCRIBERS * changes when each runs its own).
    assert await lookups(api) - before == changes * len(groups(api))
    # And what holds them: one group with every subscriber in it.
    assert group_sizes(api) == [SUBSCRIBERS]


async def test_different_variables_make_different_groups(
    gateway_bot: RunningBot,
    api: RunningApi,
    http: SandboxHttp,
    open_socket: Callable[..., Awaitable[Socket]],
    fixture: Fixture,
) -> None:
    quiet = guild_id(fixture, "Quiet Corner")
    playground = guild_id(fixture, "Polly Playground")
    helpers = role_id(fixture, "Quiet Corner", "Helpers")
    general, art = (c.id for g in fixture.guilds if g.id == quiet for c in g.channels if c.type == 0)
    asked = {
        "guild": {"g": str(quiet), "since": "0-0"},
        "guild again": {"g": str(quiet), "since": "1-0"},  # only `since` differs: the same group
        "general": {"g": str(quiet), "c": str(general), "since": "0-0"},
        "art": {"g": str(quiet), "c": str(art), "since": "0-0"},
        "other guild": {"g": str(playground), "since": "0-0"},
    }
    sockets = {}
    for name, variables in asked.items():
        sockets[name] = socket = await open_socket(api)
        await socket.start("1", CHANGES, variables)
        assert (await socket.change())["kind"] == "GUILD_RESYNCED", name
    # Each joined its group before its replay sent the resync: the groups are all there now.
    assert group_sizes(api) == [1, 1, 1, 2]
    await held(api, quiet)
    await held(api, playground)

    before = await lookups(api)
    await rename(http, quiet, helpers, "Grouped")
    quiet_sockets = [name for name in asked if name != "other guild"]
    received = {name: await sockets[name].change() for name in quiet_sockets}
    assert all(change["kind"] == "ROLE_UPDATED" for change in received.values()), received
    assert received["guild"] == received["guild again"]
    # Quiet Corner's three groups each ran once for its change (on each worker serving them);
    # the other guild's did not.
    quiet_groups = [group for group in groups(api) if group.key[2] != orjson.dumps({"g": str(playground)})]
    assert len(quiet_groups) >= 3
    assert await lookups(api) - before == len(quiet_groups)


# -- 2. the protocols' 4409 and keep-alives -----------------------------------------------------


async def test_a_duplicate_operation_id_closes_the_socket_with_4409(
    api: RunningApi, open_socket: Callable[..., Awaitable[Socket]], fixture: Fixture
) -> None:
    quiet = guild_id(fixture, "Quiet Corner")
    socket = await open_socket(api)
    await socket.start("1", CHANGES, {"g": str(quiet), "since": "0-0"})
    # Its first message: operation 1 is running (and stays so, waiting for changes).
    assert (await socket.change())["kind"] == "GUILD_RESYNCED"
    await socket.start("1", CHANGES, {"g": str(quiet)})
    await until_closed(socket.ws, within=WITHIN)
    assert socket.ws.close_code == 4409
    assert socket.ws.close_reason is not None and "already exists" in socket.ws.close_reason


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
async def test_an_idle_socket_receives_keep_alives(
    api_factory: Callable[..., Awaitable[RunningApi]],
    open_socket: Callable[..., Awaitable[Socket]],
    fixture: Fixture,
    protocol: str,
) -> None:
    api = await api_factory(keep_alive_interval=0.5)
    socket = await open_socket(api, protocol)
    # Idle: nothing but keep-alives may arrive, and they keep coming (how often is the
    # setting's business; that a short one brings several while we wait is what matters).
    async with asyncio.timeout(WITHIN):
        while socket.keep_alives < 3:
            message = json.loads(await socket.ws.recv())
            assert message == {"type": KEEP_ALIVE[protocol]}, message
            socket.keep_alives += 1
    await socket.answers(guild_id(fixture, "Quiet Corner"))


# -- 3. 4403 when a login ends or a user's guilds change ------------------------------------------


async def user_socket(
    api: RunningApi, open_socket: Callable[..., Awaitable[Socket]], client: Any, protocol: str
) -> Socket:
    """A socket signed in by the session cookie (from our own page), subscribed to Playground."""
    caller = user_caller(api, "user", client)
    socket = await open_socket(api, protocol, caller.ws_headers)
    playground = guild_id(api.sandbox.fixture, "Polly Playground")
    await socket.start("1", CHANGES, {"g": str(playground), "since": "0-0"})
    first = await socket.change()
    assert first["kind"] == "GUILD_RESYNCED", first  # the login counts on this socket
    return socket


async def survives_a_recheck(api: RunningApi, socket: Socket) -> None:
    """The user's guilds were asked of Discord again while the socket is open, and it stayed:
    a recheck alone closes nothing; what follows is what closes it."""
    asked = api.calls_to(GUILD_LIST)

    async def asked_again() -> bool:
        return api.calls_to(GUILD_LIST) > asked

    try:
        await wait_until(asked_again, within=WITHIN, interval=0.05)
    except TimeoutError:
        raise AssertionError("the user's guilds were never asked again: no recheck ran") from None
    await socket.answers(guild_id(api.sandbox.fixture, "Polly Playground"))


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
async def test_a_socket_is_closed_with_4403_when_its_login_ends(
    api_factory: Callable[..., Awaitable[RunningApi]],
    open_socket: Callable[..., Awaitable[Socket]],
    protocol: str,
) -> None:
    # Rechecked as often as the copies of who the caller is may be cached: every second, from
    # the acknowledgement on. The long init timeout is there so that rechecks which waited for
    # it first (graphql-ws did) would come far too late for the wait below.
    api = await api_factory(viewer_cache_ttl=1, api_key_cache_ttl=1, connection_init_timeout=300)
    async with contextlib.aclosing(await log_in(api, "alice")) as client:
        socket = await user_socket(api, open_socket, client, protocol)
        await survives_a_recheck(api, socket)
        # Logged out by the same browser, from our own page.
        logout = await client.post("/auth/logout", headers={"Origin": api.url})
        assert logout.status_code == 204, logout.text
        await until_closed(socket.ws, within=WITHIN)
    assert socket.ws.close_code == 4403
    assert socket.ws.close_reason is not None and "login has ended" in socket.ws.close_reason


@pytest.mark.parametrize("how", ["leaves the guild", "loses a role"])
async def test_a_socket_is_closed_with_4403_when_its_users_guilds_change(
    api_factory: Callable[..., Awaitable[RunningApi]],
    open_socket: Callable[..., Awaitable[Socket]],
    http: SandboxHttp,
    fixture: Fixture,
    how: str,
) -> None:
    api = await api_factory(viewer_cache_ttl=1, api_key_cache_ttl=1)
    playground = guild_id(fixture, "Polly Playground")
    bob = next(user.id for user in fixture.users if user.username == "bob")
    voters = role_id(fixture, "Polly Playground", "Poll Voters")
    async with contextlib.aclosing(await log_in(api, "bob")) as client:
        socket = await user_socket(api, open_socket, client, TRANSPORT)
        await survives_a_recheck(api, socket)
        member = f"/_sandbox/guilds/{playground}/members/{bob}"
        if how == "leaves the guild":
            await http.control("DELETE", member)
        else:
            # Still a member who may read the roles, but without Moderators' permissions
            # (manage messages, kick members): what bob may do in the guild changed.
            await http.control("PUT", member, {"roles": [str(voters)]})
        await until_closed(socket.ws, within=WITHIN)
    assert socket.ws.close_code == 4403
    assert socket.ws.close_reason is not None and "access changed" in socket.ws.close_reason


# -- 4. the grace of a user's last guild list ------------------------------------------------------

# Seconds: the README's 15 minutes, shortened through POLLY_VIEWER_GRACE. The first half needs
# a refresh to fail within it, one viewer TTL (1 s) after the list it counts from.
GRACE = 5


def test_the_grace_is_fifteen_minutes_unless_set() -> None:
    assert Settings.model_fields["viewer_grace"].default == 15 * 60


async def test_a_users_last_guild_list_serves_while_discord_fails_then_not_past_the_grace(
    api_factory: Callable[..., Awaitable[RunningApi]], http: SandboxHttp, fixture: Fixture
) -> None:
    api = await api_factory(viewer_cache_ttl=1, viewer_grace=GRACE)
    playground = guild_id(fixture, "Polly Playground")
    async with contextlib.aclosing(await log_in(api, "carol")) as client:
        caller = user_caller(api, "carol", client)
        # The first request lists carol's guilds from Discord: the list the grace counts from.
        first = await over_http(caller, GUILD_ROLES, {"g": str(playground)})
        assert first.status == 200 and first.body["data"]["guildRoles"], first.text

        # Discord fails every call the refresh of a user's guilds makes, until told otherwise.
        for route in (GUILD_LIST, TOKEN):
            method, path = route.split(" ")
            await http.control("POST", "/_sandbox/faults", {"method": method, "route": path,
                                                           "status": 503, "count": 100_000})  # fmt: skip

        async def served_from_the_last_list() -> bool:
            """Each request succeeds; true once one did although Discord failed to list the
            guilds for it (the viewer cache's TTL ran out, so it asked)."""
            asked = api.calls_to(GUILD_LIST)
            answer = await over_http(caller, GUILD_ROLES, {"g": str(playground)})
            assert answer.status == 200 and answer.body["data"]["guildRoles"], answer.text
            return api.calls_to(GUILD_LIST) > asked

        await wait_until(served_from_the_last_list, within=WITHIN, interval=0.05)
        faults = (await http.control("GET", "/_sandbox/faults"))["faults"]
        assert any(f["route"] == "/users/@me/guilds" and f["count"] < 100_000 for f in faults), faults

        latest: list[Answer] = []

        async def refused() -> bool:
            latest[:] = [await over_http(caller, GUILD_ROLES, {"g": str(playground)})]
            return latest[0].status != 200

        # Past the grace (counted from the last list Discord gave), no more stand-in.
        await wait_until(refused, within=WITHIN + GRACE, interval=0.05)
        answer = latest[0]
        assert answer.status == 503 and answer.codes == ["DISCORD_UNAVAILABLE"], answer.text
        assert "Moderators" not in answer.text

        # Discord answers again: so does the API, with the same login.
        await http.control("DELETE", "/_sandbox/faults")

        async def answered() -> bool:
            again = await over_http(caller, GUILD_ROLES, {"g": str(playground)})
            return again.status == 200 and bool(again.body["data"]["guildRoles"])

        await wait_until(answered, within=WITHIN, interval=0.05)
