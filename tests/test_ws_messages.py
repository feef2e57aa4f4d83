"""Every WebSocket message, whatever its shape, gets its protocol's answer — never a traceback —
and a peer that goes away is a normal end of a connection, never an error in the log.

graphql-transport-ws closes with 4400 and a reason for a message that does not fit the protocol
(graphql-ws's PROTOCOL.md); the legacy graphql-ws protocol answers ``error`` (for the operation
the message names) or ``connection_error`` (when it names none) and stays open, as
subscriptions-transport-ws's server does. Checked field by field with tables of messages, then
fuzzed with generated ones (hypothesis), with the server's log captured throughout.

Everything runs against the real parts: the API on a loopback socket, ``websockets`` clients
(the asyncio one, and the synchronous one in a worker thread for the fuzz, since hypothesis runs
synchronously while uvicorn serves from the test's event loop), and, for the broadcasts, the
sandbox with the gateway bot writing through the test's own redis-server. Each test runs
against one API worker and against two sharing the port (each connection on the worker the
kernel picks), with both workers' logs captured.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import websockets
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection
from websockets.sync.client import connect as connect_sync
from websockets.typing import Subprotocol

from app.sandbox.fixture import Fixture
from tests.conftest import RunningApi, RunningBot, SandboxHttp, guild_id, role_id, until_closed, wait_until
from tests.test_fuzz import SLOW_IS_FINE, json_values
from tests.test_subscriptions import held

pytestmark = [pytest.mark.timeout(180), pytest.mark.workers_1_and_2]

TRANSPORT = "graphql-transport-ws"
LEGACY = "graphql-ws"
KEEP_ALIVE = {TRANSPORT: "ping", LEGACY: "ka"}
# Generous: waits end as soon as what they wait for happens; this only bounds a broken run.
WITHIN = 30.0
# What a close frame's reason may hold (RFC 6455 section 5.5: 125 bytes, 2 of them the code).
MAX_REASON_BYTES = 123
# The close codes each protocol (as Strawberry speaks it) may end a connection with, whatever
# the client sent: 4400 bad message, 4401 operation before init, 4409 duplicate id, 4429 second
# init; on graphql-ws, 1000 (connection_terminate) and 1002 (a binary frame) instead of 4400
# and 4409 (a malformed message is answered there, and a start with a running id replaces it).
TRANSPORT_CLOSES = {4400, 4401, 4409, 4429}
LEGACY_CLOSES = {1000, 1002, 4401, 4429}

CHANGES = """subscription($g: ID!, $since: String) {
  guildRolesChanged(guildId: $g, since: $since) { kind roleId pingableRoles { id name } }
}"""
# `since` given literally: not shared, so each subscriber runs its own execution and its own
# sends (Strawberry's), next to the shared group's writes (the fan-out's).
UNSHARED = """subscription($g: ID!) {
  guildRolesChanged(guildId: $g, since: "0-0") { kind roleId pingableRoles { id name } }
}"""


# -- the server's log ------------------------------------------------------------------------------


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The API's log as the test runs it in-process: the root logger's records (app, strawberry,
    asyncio) and uvicorn's, whose loggers do not propagate to the root."""
    caplog.set_level(logging.WARNING)
    uvicorn_log = logging.getLogger("uvicorn")
    uvicorn_log.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        uvicorn_log.removeHandler(caplog.handler)


def faults(log: pytest.LogCaptureFixture, level: int = logging.ERROR) -> list[str]:
    """What the server logged at ``level`` or above, or with a traceback."""
    # A task whose exception nobody retrieved is only reported when it is collected.
    gc.collect()
    return [
        f"{record.levelname} {record.name}: {record.getMessage()[:300]}"
        for record in log.records
        if record.levelno >= level or record.exc_info
    ]


async def server_idle(api: RunningApi) -> None:
    """Wait until every worker's server has finished with every connection (its ASGI tasks all
    ended), so that everything those connections could log has been logged."""

    async def idle() -> bool:
        return not any(server.server_state.tasks for _, server in api.workers)

    await wait_until(idle, within=WITHIN)


# -- raw sockets -------------------------------------------------------------------------------------


async def open_raw(api: RunningApi, protocol: str, *, init: bool = True) -> ClientConnection:
    ws = await websockets.connect(
        api.ws_url, subprotocols=[Subprotocol(protocol)], additional_headers=api.auth
    )
    if init:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert (await receive(ws, protocol))["type"] == "connection_ack"
    return ws


async def receive(ws: ClientConnection, protocol: str) -> dict[str, Any]:
    """The next message that is not a keep-alive."""
    async with asyncio.timeout(WITHIN):
        while True:
            message: dict[str, Any] = json.loads(await ws.recv())
            if message["type"] != KEEP_ALIVE[protocol]:
                return message


def encoded(message: Any) -> str:
    return message if isinstance(message, str) else json.dumps(message)


QUERY = {"query": "{ apiVersion }"}

# graphql-transport-ws: (message, what the close reason must say). Sent after the init, except
# the connection_init ones, sent first.
TRANSPORT_MALFORMED: list[tuple[Any, str]] = [
    # The shapes of the issue.
    ("[]", "JSON object"),
    ("1", "JSON object"),
    ({"id": "1", "type": "subscribe", "payload": None}, "payload must be an object"),
    # Not JSON, not an object.
    ("not json", "not valid JSON"),
    ('{"type": "ping"', "not valid JSON"),
    ("1" * 5000, "not valid JSON"),  # an integer past Python's digit limit
    ("[" * 30_000 + "]" * 30_000, "nested too deeply"),
    ("null", "JSON object"),
    ('"connection_init"', "JSON object"),
    ("true", "JSON object"),
    # type
    ({}, '"type" must be a string'),
    ({"type": None}, '"type" must be a string'),
    ({"type": 1}, '"type" must be a string'),
    ({"type": ["ping"]}, '"type" must be a string'),
    ({"type": "nope"}, "unknown type"),
    ({"type": "x" * 10_000}, "unknown type"),
    ({"type": "\u00e9" * 200}, "unknown type"),
    ({"type": "next", "id": "1", "payload": {}}, "unknown type"),  # the server's, not the client's
    ({"type": "connection_ack"}, "unknown type"),
    ({"type": "start", "id": "1", "payload": QUERY}, "unknown type"),  # the legacy protocol's
    # payload of connection_init, ping, pong
    ({"type": "connection_init", "payload": []}, "payload must be an object or null"),
    ({"type": "connection_init", "payload": "Bearer x"}, "payload must be an object or null"),
    ({"type": "connection_init", "payload": 0}, "payload must be an object or null"),
    ({"type": "ping", "payload": 5}, "payload must be an object or null"),
    ({"type": "ping", "payload": []}, "payload must be an object or null"),
    ({"type": "pong", "payload": "x"}, "payload must be an object or null"),
    # subscribe: id
    ({"type": "subscribe", "payload": QUERY}, '"id" must be a non-empty string'),
    ({"type": "subscribe", "id": None, "payload": QUERY}, '"id" must be a non-empty string'),
    ({"type": "subscribe", "id": 1, "payload": QUERY}, '"id" must be a non-empty string'),
    ({"type": "subscribe", "id": "", "payload": QUERY}, '"id" must be a non-empty string'),
    ({"type": "subscribe", "id": ["1"], "payload": QUERY}, '"id" must be a non-empty string'),
    # subscribe: payload
    ({"type": "subscribe", "id": "1"}, "payload must be an object"),
    ({"type": "subscribe", "id": "1", "payload": []}, "payload must be an object"),
    ({"type": "subscribe", "id": "1", "payload": "{ apiVersion }"}, "payload must be an object"),
    ({"type": "subscribe", "id": "1", "payload": {}}, "payload.query must be a string"),
    ({"type": "subscribe", "id": "1", "payload": {"query": None}}, "payload.query must be a string"),
    ({"type": "subscribe", "id": "1", "payload": {"query": 5}}, "payload.query must be a string"),
    ({"type": "subscribe", "id": "1", "payload": {"query": ["{ a }"]}}, "payload.query must be a string"),
    ({"type": "subscribe", "id": "1", "payload": {**QUERY, "variables": []}}, "payload.variables"),
    ({"type": "subscribe", "id": "1", "payload": {**QUERY, "variables": "{}"}}, "payload.variables"),
    ({"type": "subscribe", "id": "1", "payload": {**QUERY, "variables": 5}}, "payload.variables"),
    ({"type": "subscribe", "id": "1", "payload": {**QUERY, "operationName": 5}}, "payload.operationName"),
    ({"type": "subscribe", "id": "1", "payload": {**QUERY, "operationName": {}}}, "payload.operationName"),
    ({"type": "subscribe", "id": "1", "payload": {**QUERY, "operationName": True}}, "payload.operationName"),
    ({"type": "subscribe", "id": "1", "payload": {**QUERY, "extensions": []}}, "payload.extensions"),
    ({"type": "subscribe", "id": "1", "payload": {**QUERY, "extensions": "x"}}, "payload.extensions"),
    # complete: id
    ({"type": "complete"}, '"id" must be a non-empty string'),
    ({"type": "complete", "id": 7}, '"id" must be a non-empty string'),
    ({"type": "complete", "id": ""}, '"id" must be a non-empty string'),
]


async def test_every_malformed_graphql_transport_ws_message_closes_with_4400_and_a_reason(
    api: RunningApi, server_log: pytest.LogCaptureFixture
) -> None:
    for message, says in TRANSPORT_MALFORMED:
        is_init = isinstance(message, dict) and message.get("type") == "connection_init"
        ws = await open_raw(api, TRANSPORT, init=not is_init)
        await ws.send(encoded(message))
        received = await until_closed(ws, within=WITHIN)
        case = encoded(message)[:80]
        assert received == [], (case, received)
        assert ws.close_code == 4400, (case, ws.close_code, ws.close_reason)
        reason = ws.close_reason or ""
        assert says in reason, (case, reason)
        assert len(reason.encode()) <= MAX_REASON_BYTES, (case, reason)
    # A binary frame: the protocol's messages are text.
    ws = await open_raw(api, TRANSPORT)
    await ws.send(b'{"type": "ping"}')
    await until_closed(ws, within=WITHIN)
    assert ws.close_code == 4400 and "text" in (ws.close_reason or "")
    await server_idle(api)
    assert faults(server_log) == []


async def test_graphql_transport_ws_takes_every_shape_the_protocol_allows(
    api: RunningApi, server_log: pytest.LogCaptureFixture
) -> None:
    # connection_init's payload may be null (as may ping's and pong's).
    ws = await open_raw(api, TRANSPORT, init=False)
    await ws.send(json.dumps({"type": "connection_init", "payload": None}))
    assert (await receive(ws, TRANSPORT))["type"] == "connection_ack"
    for ping in ({"type": "ping"}, {"type": "ping", "payload": None}, {"type": "ping", "payload": {"a": 1}}):
        await ws.send(json.dumps(ping))
        assert await receive(ws, TRANSPORT) == {"type": "pong"}
    for quiet in (
        {"type": "pong"},
        {"type": "pong", "payload": None},
        {"type": "pong", "payload": {}},
        {"type": "complete", "id": "never started"},
    ):
        await ws.send(json.dumps(quiet))
    # Optional members given as null, an empty operationName (as over HTTP: none), extensions,
    # and members the protocol does not know, which are ignored.
    payloads = [
        {"query": "{ apiVersion }", "variables": None, "operationName": None, "extensions": None},
        {"query": "{ apiVersion }", "variables": {}, "operationName": "", "extensions": {"x": 1}},
        {"query": "query A { apiVersion }", "operationName": "A", "unknown": [1]},
    ]
    for number, payload in enumerate(payloads):
        operation = f"op {number}"
        await ws.send(json.dumps({"id": operation, "type": "subscribe", "payload": payload, "extra": True}))
        assert await receive(ws, TRANSPORT) == {
            "id": operation,
            "type": "next",
            "payload": {"data": {"apiVersion": "0.1.0"}},
        }
        assert await receive(ws, TRANSPORT) == {"id": operation, "type": "complete"}
    await ws.close()
    await server_idle(api)
    assert faults(server_log) == []


async def test_close_reasons_that_quote_the_client_are_cut_to_fit_a_close_frame(
    api: RunningApi, server_log: pytest.LogCaptureFixture, fixture: Fixture
) -> None:
    """Strawberry's own reasons quote the client: an operation id (4409) or the document's
    syntax error. A close frame holds 123 bytes of reason; a longer one broke the connection."""
    quiet = guild_id(fixture, "Quiet Corner")
    ws = await open_raw(api, TRANSPORT)
    long_id = "\u00e9" * 2000
    subscribe = {"query": CHANGES, "variables": {"g": str(quiet), "since": "0-0"}}
    await ws.send(json.dumps({"id": long_id, "type": "subscribe", "payload": subscribe}))
    assert (await receive(ws, TRANSPORT))["id"] == long_id  # running: its first message came
    await ws.send(json.dumps({"id": long_id, "type": "subscribe", "payload": subscribe}))
    await until_closed(ws, within=WITHIN)
    assert ws.close_code == 4409, (ws.close_code, ws.close_reason)
    assert len((ws.close_reason or "").encode()) <= MAX_REASON_BYTES

    ws = await open_raw(api, TRANSPORT)
    query = "{ apiVersion " + "\u00e9" * 3000
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
    await until_closed(ws, within=WITHIN)
    assert ws.close_code == 4400 and "Syntax Error" in (ws.close_reason or ""), ws.close_reason
    assert len((ws.close_reason or "").encode()) <= MAX_REASON_BYTES
    await server_idle(api)
    assert faults(server_log) == []


# graphql-ws: (message, the answer's type, the id it names, what its message must say).
LEGACY_MALFORMED: list[tuple[Any, str, str | None, str]] = [
    # The shapes of the issue.
    ("[]", "connection_error", None, "JSON object"),
    ({"id": "1"}, "error", "1", '"type"'),
    ({"id": "1", "type": "start", "payload": None}, "error", "1", "payload must be an object"),
    ({"type": "start", "payload": QUERY}, "connection_error", None, '"id" must be a non-empty string'),
    # Not JSON, not an object: nothing names an operation.
    ("not json", "connection_error", None, "not valid JSON"),
    ("[" * 30_000 + "]" * 30_000, "connection_error", None, "nested too deeply"),
    ("1", "connection_error", None, "JSON object"),
    ("null", "connection_error", None, "JSON object"),
    ('"start"', "connection_error", None, "JSON object"),
    # type
    ({}, "connection_error", None, '"type"'),
    ({"type": 5}, "connection_error", None, '"type"'),
    ({"type": None, "id": "7"}, "error", "7", '"type"'),
    ({"type": "nope"}, "connection_error", None, "Unknown message type"),
    ({"type": "nope", "id": "3"}, "error", "3", "Unknown message type"),
    ({"type": "y" * 10_000, "id": "3"}, "error", "3", "Unknown message type"),
    ({"type": "data", "id": "1", "payload": {}}, "error", "1", "Unknown message type"),  # the server's
    ({"type": "subscribe", "id": "1", "payload": QUERY}, "error", "1", "Unknown message type"),
    ({"type": "ka"}, "connection_error", None, "Unknown message type"),
    # connection_init's payload (a second, valid one is the 4429 test's)
    ({"type": "connection_init", "payload": []}, "connection_error", None, "payload must be an object"),
    ({"type": "connection_init", "payload": "x"}, "connection_error", None, "payload must be an object"),
    # start: id
    ({"type": "start", "id": None, "payload": QUERY}, "connection_error", None, '"id"'),
    ({"type": "start", "id": 1, "payload": QUERY}, "connection_error", None, '"id"'),
    ({"type": "start", "id": "", "payload": QUERY}, "connection_error", None, '"id"'),
    ({"type": "start", "id": {"a": 1}, "payload": QUERY}, "connection_error", None, '"id"'),
    # start: payload
    ({"type": "start", "id": "2"}, "error", "2", "payload must be an object"),
    ({"type": "start", "id": "2", "payload": []}, "error", "2", "payload must be an object"),
    ({"type": "start", "id": "2", "payload": {}}, "error", "2", "payload.query must be a string"),
    ({"type": "start", "id": "2", "payload": {"query": None}}, "error", "2", "payload.query"),
    ({"type": "start", "id": "2", "payload": {"query": 1.5}}, "error", "2", "payload.query"),
    ({"type": "start", "id": "2", "payload": {**QUERY, "variables": []}}, "error", "2", "payload.variables"),
    ({"type": "start", "id": "2", "payload": {**QUERY, "variables": "x"}}, "error", "2", "payload.variables"),
    ({"type": "start", "id": "2", "payload": {**QUERY, "operationName": 1}}, "error", "2", "operationName"),
    ({"type": "start", "id": "2", "payload": {**QUERY, "operationName": []}}, "error", "2", "operationName"),
    ({"type": "start", "id": "2", "payload": {**QUERY, "extensions": 1}}, "error", "2", "payload.extensions"),
    # stop: id
    ({"type": "stop"}, "connection_error", None, '"id"'),
    ({"type": "stop", "id": 2}, "connection_error", None, '"id"'),
    ({"type": "stop", "id": ""}, "connection_error", None, '"id"'),
]


async def test_every_malformed_graphql_ws_message_is_answered_and_the_connection_stays(
    api: RunningApi, server_log: pytest.LogCaptureFixture
) -> None:
    ws = await open_raw(api, LEGACY)
    for message, kind, operation, says in LEGACY_MALFORMED:
        await ws.send(encoded(message))
        answer = await receive(ws, LEGACY)
        case = encoded(message)[:80]
        assert answer["type"] == kind and answer.get("id") == operation, (case, answer)
        assert says in answer["payload"]["message"], (case, answer)
        assert answer["payload"]["extensions"] == {"code": "BAD_REQUEST"}, (case, answer)
    # The connection served on through all of it.
    await ws.send(json.dumps({"id": "q", "type": "start", "payload": {"query": "{ apiVersion }"}}))
    assert (await receive(ws, LEGACY))["id"] == "q"
    await ws.close()
    # A binary frame: the protocol's messages are text (Strawberry closes with 1002).
    ws = await open_raw(api, LEGACY)
    await ws.send(b'{"type": "connection_init"}')
    await until_closed(ws, within=WITHIN)
    assert ws.close_code == 1002
    await server_idle(api)
    assert faults(server_log) == []


async def test_a_second_connection_init_on_graphql_ws_closes_with_4429(
    api_factory: Callable[..., Awaitable[RunningApi]], server_log: pytest.LogCaptureFixture
) -> None:
    # Frequent keep-alives: each init used to start one, and the first was never stopped.
    api = await api_factory(keep_alive_interval=0.01)
    anonymous = await websockets.connect(api.ws_url, subprotocols=[Subprotocol(LEGACY)])
    await anonymous.send(json.dumps({"type": "connection_init"}))
    assert (await receive(anonymous, LEGACY))["type"] == "connection_ack"
    # The second would have made the anonymous connection act as the key's holder.
    await anonymous.send(
        json.dumps({"type": "connection_init", "payload": {"authorization": api.auth["Authorization"]}})
    )
    await until_closed(anonymous, within=WITHIN)
    assert anonymous.close_code == 4429
    assert anonymous.close_reason == "Too many initialisation requests"
    await server_idle(api)
    assert faults(server_log) == []


async def test_documents_a_socket_cannot_run_are_the_clients_mistake(
    api: RunningApi, server_log: pytest.LogCaptureFixture
) -> None:
    """Strawberry took these for faults of ours: INTERNAL_SERVER_ERROR, and an ERROR with a
    traceback in the log."""
    legacy = await open_raw(api, LEGACY)
    two = "subscription A { x } subscription B { y }"
    cases = [
        # Strawberry runs only subscriptions over graphql-ws.
        ({"query": "{ apiVersion }"}, "BAD_REQUEST", "Only subscriptions"),
        ({"query": "query Q { apiVersion }", "operationName": "Q"}, "BAD_REQUEST", "Only subscriptions"),
        ({"query": "mutation { apiVersion }"}, "BAD_REQUEST", "Only subscriptions"),
        # No operation to run.
        ({"query": two, "operationName": "C"}, "GRAPHQL_VALIDATION_FAILED", "no operation named"),
        ({"query": two}, "GRAPHQL_VALIDATION_FAILED", "operationName"),
        ({"query": "fragment F on Query { apiVersion }"}, "GRAPHQL_VALIDATION_FAILED", "no operation"),
        ({"query": ""}, "GRAPHQL_PARSE_FAILED", "Syntax Error"),
    ]  # fmt: skip
    for number, (payload, code, says) in enumerate(cases):
        operation = f"op {number}"
        await legacy.send(json.dumps({"id": operation, "type": "start", "payload": payload}))
        answer = await receive(legacy, LEGACY)
        assert answer["type"] == "error" and answer["id"] == operation, (payload, answer)
        assert answer["payload"]["extensions"]["code"] == code, (payload, answer)
        assert says in answer["payload"]["message"], (payload, answer)
    await legacy.close()

    transport = await open_raw(api, TRANSPORT)
    for number, name in enumerate(["C", None]):
        payload = {"query": "query A { apiVersion } query B { apiVersion }", "operationName": name}
        await transport.send(json.dumps({"id": str(number), "type": "subscribe", "payload": payload}))
        answer = await receive(transport, TRANSPORT)
        assert answer["type"] == "error" and answer["id"] == str(number), answer
        assert [error["extensions"]["code"] for error in answer["payload"]] == ["GRAPHQL_VALIDATION_FAILED"]
    # An empty document does not parse: the protocol's 4400, as for any other syntax error.
    await transport.send(json.dumps({"id": "empty", "type": "subscribe", "payload": {"query": ""}}))
    await until_closed(transport, within=WITHIN)
    assert transport.close_code == 4400 and "Syntax Error" in (transport.close_reason or "")
    await server_idle(api)
    assert faults(server_log) == []


# -- peers that go away ------------------------------------------------------------------------------

SOCKETS = 300
# Per socket: one subscription shared by all, and a few of its own (so that, with a read of the
# guild before each send, a broadcast takes a while to reach every socket).
OPERATIONS = {"shared": CHANGES, **{f"own {n}": UNSHARED for n in range(4)}}


async def test_sockets_closing_during_broadcasts_leave_nothing_in_the_log(
    gateway_bot: RunningBot,
    api_factory: Callable[..., Awaitable[RunningApi]],
    http: SandboxHttp,
    fixture: Fixture,
    server_log: pytest.LogCaptureFixture,
) -> None:
    """300 sockets of both protocols, each with a shared subscription (one group of 300: the
    fan-out's threaded writes) and four of its own (Strawberry's sends, each after a read of the
    guild), drop their connections while changes are broadcast to them; frequent keep-alives
    go to them meanwhile.

    One socket on each worker watches: as soon as a change reaches it, its worker's broadcast of
    that change is under way (the group writes to all at once; the others' own subscriptions
    read the guild, then send), and a third of the worker's other sockets go, without a word."""
    # Redis may answer late on a loaded machine (the suite runs beside other work): a real
    # event, with its warning, not the closed-peer noise this test looks for.
    api = await api_factory(keep_alive_interval=0.02, redis_timeout=10)
    quiet = guild_id(fixture, "Quiet Corner")
    helpers = role_id(fixture, "Quiet Corner", "Helpers")
    sockets: list[ClientConnection] = []
    for number in range(SOCKETS):
        protocol = TRANSPORT if number % 2 else LEGACY
        ws = await open_raw(api, protocol)
        start = "subscribe" if protocol == TRANSPORT else "start"
        for operation, query in OPERATIONS.items():
            payload = {"query": query, "variables": {"g": str(quiet), "since": "0-0"}}
            await ws.send(json.dumps({"id": operation, "type": start, "payload": payload}))
        # All running: each one's first message (its resync) came.
        assert {(await receive(ws, protocol))["id"] for _ in OPERATIONS} == set(OPERATIONS)
        sockets.append(ws)
    by_worker: dict[int, list[ClientConnection]] = {}
    for ws in sockets:
        by_worker.setdefault(api.worker_of(ws.local_address), []).append(ws)
    assert sorted(by_worker) == list(range(len(api.workers)))  # 300 sockets: each worker got some
    for worker, served in by_worker.items():
        # One group on each worker, every socket the worker serves in it.
        groups = api.every_services[worker].streaming.fanout.groups.values()
        assert [len(group.members) for group in groups] == [len(served)], worker
    await held(api, quiet)

    # A watcher on each worker, speaking graphql-transport-ws; the worker's other sockets in
    # three batches, one to go at each change.
    plans: list[tuple[ClientConnection, list[list[ClientConnection]]]] = []
    for served in by_worker.values():
        watcher = next(ws for ws in served if ws.subprotocol == TRANSPORT)
        others = [ws for ws in served if ws is not watcher]
        plans.append((watcher, [others[start::3] for start in range(3)]))

    async def drop_when_seen(watcher: ClientConnection, batch: list[ClientConnection], name: str) -> None:
        """Drop ``batch`` as soon as the change that names ``name`` reaches ``watcher``: its
        worker's broadcast of it is under way."""
        seen: set[str] = set()
        while seen != set(OPERATIONS):
            message = await receive(watcher, TRANSPORT)
            change = message["payload"]["data"]["guildRolesChanged"]
            if change["kind"] == "ROLE_UPDATED" and name in [
                role["name"] for role in change["pingableRoles"]
            ]:
                if not seen:
                    for index, ws in enumerate(batch):
                        # Half vanish (a reset, no close frame), half close their end of TCP.
                        if index % 2:
                            ws.transport.abort()
                        else:
                            ws.transport.close()
                seen.add(message["id"])

    for number in range(3):
        name = f"Dropped {number}"
        await http.control("PATCH", f"/_sandbox/guilds/{quiet}/roles/{helpers}", {"name": name})
        await asyncio.gather(*(drop_when_seen(watcher, batches[number], name) for watcher, batches in plans))
    for watcher, _ in plans:
        await watcher.close()
    await server_idle(api)
    assert [services.streaming.fanout.groups for services in api.every_services] == [{}] * len(api.workers)
    # Warnings included: asyncio's about writes to reset sockets are what this is about. Not the
    # cache's outage lines: on a machine loaded far past its cores, Redis can answer too late for
    # the connection pool (seen with stress-ng beside the suite), which is not about sockets.
    outage = ("WARNING app.cache.connection: Redis failed", "WARNING app.cache.connection: Redis is back")
    assert [fault for fault in faults(server_log, logging.WARNING) if not fault.startswith(outage)] == []

    # And the API serves on.
    ws = await open_raw(api, TRANSPORT)
    payload = {"query": CHANGES, "variables": {"g": str(quiet), "since": "0-0"}}
    await ws.send(json.dumps({"id": "after", "type": "subscribe", "payload": payload}))
    assert (await receive(ws, TRANSPORT))["payload"]["data"]["guildRolesChanged"]["kind"] == "GUILD_RESYNCED"
    await ws.close()


# -- fuzz --------------------------------------------------------------------------------------------

MISSING = object()  # a member left out of a generated message


def members(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects whose members may each be left out; MISSING ones are."""
    return st.fixed_dictionaries(fields).map(
        lambda drawn: {k: v for k, v in drawn.items() if v is not MISSING}
    )


def near(valid: st.SearchStrategy[Any], rate: int = 4) -> st.SearchStrategy[Any]:
    """Mostly ``valid``; otherwise left out, or a JSON value of any type in its place."""
    return st.one_of(*[valid] * rate, st.just(MISSING), json_values())


@dataclass
class Messages:
    valid: st.SearchStrategy[str]  # of the protocol's shapes, with any content
    odd: st.SearchStrategy[str]  # near-valid, any JSON, or not JSON at all; now and then a closing one


def message_strategies(protocol: str, guild: int) -> Messages:
    """Messages for ``protocol``: ones of the protocol's shapes (so that connections live on and
    their state changes: operations run, fail, stop, collide), near-valid ones with members left
    out or of the wrong type, JSON values of every kind, and text that is not JSON."""
    documents = st.one_of(
        st.sampled_from(
            [
                "{ apiVersion }",
                "query A { apiVersion } query B { apiVersion }",
                "mutation { apiVersion }",
                CHANGES,
                UNSHARED,
                'subscription { guildRolesChanged(guildId: "1") { kind } }',
                "subscription { nope }",
                "{",
                "",
            ]
        ),
        st.text(max_size=20),
    )
    variables = st.one_of(
        st.just({"g": str(guild), "since": "0-0"}),
        st.just({"g": str(guild)}),
        st.fixed_dictionaries({}, optional={"g": json_values(), "since": json_values()}),
        st.dictionaries(st.text(max_size=5), json_values(), max_size=3),
    )
    names = st.one_of(st.sampled_from(["A", "B", ""]), st.text(max_size=10))
    extensions = st.sampled_from([{}, {"persistedQuery": {"version": 1}}])
    ids = st.one_of(*[st.sampled_from([str(n) for n in range(1, 9)])] * 4, st.text(min_size=1, max_size=10))
    start = "subscribe" if protocol == TRANSPORT else "start"
    stop = "complete" if protocol == TRANSPORT else "stop"

    # Valid: optional members left out, or null, or of their type.
    def optional(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(st.just(MISSING), st.none(), valid, valid)

    good_payload = members(
        query=documents,
        variables=optional(variables),
        operationName=optional(names),
        extensions=optional(extensions),
    )
    operations = st.one_of(
        *[members(id=ids, type=st.just(start), payload=good_payload)] * 3,
        members(id=ids, type=st.just(stop)),
    )
    if protocol == TRANSPORT:
        small = optional(st.dictionaries(st.text(max_size=5), json_values(), max_size=2))
        keep_going = st.one_of(members(type=st.sampled_from(["ping", "pong"]), payload=small))
        valid = st.one_of(*[operations] * 3, *[keep_going] * 2)
    else:
        # Now and then one that ends the connection: a second init, connection_terminate.
        final = st.sampled_from([{"type": "connection_init"}, {"type": "connection_terminate"}])
        valid = st.one_of(*[operations] * 10, final)

    # Near-valid: each member kept, left out, or any JSON value in its place.
    payload = members(
        query=near(documents),
        variables=near(st.one_of(variables, st.none())),
        operationName=near(st.one_of(names, st.none())),
        extensions=near(st.one_of(extensions, st.none()), rate=2),
    )
    types = [start, stop, "connection_init"] + (
        ["ping", "pong"] if protocol == TRANSPORT else ["connection_terminate"]
    )
    near_valid = st.one_of(
        members(id=near(ids), type=st.just(start), payload=near(payload)),
        members(id=near(ids), type=st.just(stop)),
        members(
            type=near(st.sampled_from([*types, "next", "data", "error", "ka", "complete", "start"]), rate=2),
            id=near(ids, rate=1),
            payload=near(st.one_of(st.none(), st.just({}), payload), rate=1),
        ),
    )
    odd = st.one_of(
        *[near_valid.map(json.dumps)] * 6,
        json_values().map(json.dumps),
        st.text(max_size=30),
        json_values().map(lambda value: json.dumps(value)[:-1]),  # cut short
    )
    return Messages(valid.map(json.dumps), odd)


def transport_malformed(message: Any) -> bool:
    """Whether graphql-transport-ws's PROTOCOL.md has no place for ``message`` (the test's own
    reading of it, independent of the server's)."""

    def object_or_null(value: Any) -> bool:
        return value is None or isinstance(value, dict)

    if not isinstance(message, dict):
        return True
    kind = message.get("type")
    if kind in ("connection_init", "ping", "pong"):
        return not object_or_null(message.get("payload"))
    if kind not in ("subscribe", "complete"):
        return True
    if not isinstance(message.get("id"), str) or message["id"] == "":
        return True
    if kind == "complete":
        return False
    payload = message.get("payload")
    return not (
        isinstance(payload, dict)
        and isinstance(payload.get("query"), str)
        and object_or_null(payload.get("variables"))
        and (payload.get("operationName") is None or isinstance(payload["operationName"], str))
        and object_or_null(payload.get("extensions"))
    )


def legacy_malformed(message: Any) -> bool:
    """Whether subscriptions-transport-ws has no place for ``message`` (the test's reading)."""
    if not isinstance(message, dict):
        return True
    kind = message.get("type")
    if kind == "connection_init":
        return not (message.get("payload") is None or isinstance(message["payload"], dict))
    if kind == "connection_terminate":
        return False
    if kind not in ("start", "stop"):
        return True
    if kind == "stop":
        return not (isinstance(message.get("id"), str) and message["id"] != "")
    return transport_malformed({**message, "type": "subscribe"})


def decoded(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None  # not JSON: malformed either way


@dataclass
class FuzzRun:
    connections: int = 0
    messages: int = 0  # sent before the server was seen to close
    malformed: int = 0
    closes: dict[int, int] = field(default_factory=dict)
    answered_probes: int = 0


def exchange(api: RunningApi, protocol: str, texts: list[str], init: bool, keyed: bool, run: FuzzRun) -> None:
    """One connection: ``texts`` sent, then a probe the server answers only if it still serves
    the connection; checks what came back against the protocol."""
    probe = f"probe {uuid.uuid4()}"
    if protocol == TRANSPORT:
        probe_message = {"id": probe, "type": "subscribe", "payload": {"query": "{ apiVersion }"}}
    else:
        # An unknown type naming an operation: answered with `error` for it, init or not.
        probe_message = {"id": probe, "type": "probe"}
    headers = api.auth if keyed else {}
    with connect_sync(
        api.ws_url, subprotocols=[Subprotocol(protocol)], additional_headers=headers, proxy=None,
        open_timeout=WITHIN, close_timeout=WITHIN, max_size=None,
    ) as ws:  # fmt: skip
        run.connections += 1
        received: list[dict[str, Any]] = []
        closed = False
        if init:
            ws.send(json.dumps({"type": "connection_init"}))
            while (message := json.loads(ws.recv(timeout=WITHIN)))["type"] == KEEP_ALIVE[protocol]:
                pass
            assert message["type"] == "connection_ack", message
        malformed = transport_malformed if protocol == TRANSPORT else legacy_malformed
        sent: list[Any] = []
        for text in [*texts, json.dumps(probe_message)]:
            try:
                ws.send(text)
            except websockets.ConnectionClosed:
                closed = True
                break
            sent.append(decoded(text))
        answered = False
        try:
            while not answered:
                message = json.loads(ws.recv(timeout=WITHIN))
                received.append(message)
                answered = message.get("id") == probe
        except websockets.ConnectionClosed:
            closed = True
        fuzzed = sent[: len(texts)]
        if protocol == TRANSPORT:
            # The server reads nothing past the first malformed message: it closes there.
            first_bad = next((n for n, message in enumerate(fuzzed) if malformed(message)), None)
            fuzzed = fuzzed if first_bad is None else fuzzed[: first_bad + 1]
        bad = [message for message in fuzzed if malformed(message)]
        run.messages += len(fuzzed)
        run.malformed += len(bad)
        if closed:
            code = ws.close_code
            assert code is not None
            run.closes[code] = run.closes.get(code, 0) + 1
            allowed = TRANSPORT_CLOSES if protocol == TRANSPORT else LEGACY_CLOSES
            assert code in allowed, (code, ws.close_reason, texts)
            assert len((ws.close_reason or "").encode()) <= MAX_REASON_BYTES
        else:
            run.answered_probes += 1
        if protocol == TRANSPORT:
            # A malformed message never goes unanswered: the connection ends, with 4400 unless
            # something before it ended the connection first.
            assert not bad or closed, (bad, received)
        else:
            # Each malformed message is answered with an error (other errors may come too:
            # for operations the server could not run).
            errors = [
                m for m in received if m.get("type") in ("error", "connection_error") and m.get("id") != probe
            ]
            assert closed or len(errors) >= len(bad), (bad, errors)
            for error in errors:
                payload = error.get("payload")
                assert isinstance(payload, dict) and isinstance(payload.get("message"), str), error
                assert (payload.get("extensions") or {}).get("code") != "INTERNAL_SERVER_ERROR", error


@pytest.mark.parametrize(
    ("protocol", "connections"),
    # graphql-transport-ws closes at the first malformed message: more connections, fewer
    # messages on each; graphql-ws answers and stays open.
    [(TRANSPORT, 1000), (LEGACY, 700)],
)
async def test_generated_messages_get_their_protocols_answer_and_no_traceback(
    api: RunningApi, fixture: Fixture, server_log: pytest.LogCaptureFixture, protocol: str, connections: int
) -> None:
    quiet = guild_id(fixture, "Quiet Corner")
    messages = message_strategies(protocol, quiet)
    if protocol == TRANSPORT:
        # The server reads nothing past a malformed message (it closes): valid ones first, then
        # an odd one.
        sequences = st.tuples(st.lists(messages.valid, max_size=15), messages.odd).map(
            lambda parts: [*parts[0], parts[1]]
        )
    else:
        sequences = st.lists(messages.valid | messages.odd, min_size=1, max_size=24)
    run = FuzzRun()

    def run_fuzz() -> None:
        # database=None: nothing written into the checkout.
        @settings(max_examples=connections, deadline=None, database=None, suppress_health_check=SLOW_IS_FINE)
        @given(
            texts=sequences,
            # Mostly after the init; sometimes before it (then operations meet 4401).
            init=st.sampled_from([True, True, True, True, False]),
            keyed=st.booleans(),
        )
        def one_connection(texts: list[str], init: bool, keyed: bool) -> None:
            before = len(server_log.records)
            exchange(api, protocol, texts, init, keyed, run)
            logged = [r for r in server_log.records[before:] if r.levelno >= logging.ERROR or r.exc_info]
            assert logged == [], [r.getMessage()[:300] for r in logged]

        one_connection()

    await asyncio.to_thread(run_fuzz)
    await server_idle(api)
    assert faults(server_log) == []
    # The volume, for whoever runs this with -s.
    print(f"{protocol} fuzz: {run}")
    assert run.messages >= 2000, run
    assert run.malformed >= 400, run
