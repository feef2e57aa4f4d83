"""What callers get when something fails, as the README promises it: an unexpected error is
INTERNAL_SERVER_ERROR with a request id (the header's and the log's, never a stack trace); a
channel the bot can see but not write in pings nothing; a connection that could not be
identified is refused per operation (SSE: 503 with Retry-After); a dead Redis means no rate
limits rather than no service; a hanging Redis costs one timeout per breaker cycle, not one
per call.

Everything runs for real: the API under uvicorn on loopback, the sandbox as Discord, a
redis-server (the test's own where it is stopped or frozen) and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
import websockets
from websockets.typing import Subprotocol

from app.discord import permissions as perms
from app.redis_server import RedisServer
from app.sandbox.fixture import Fixture
from tests.conftest import RunningApi, SandboxHttp, channel_id, create_key, guild_id, role_id, wait_until
from tests.postgres import PostgresServer
from tests.test_access_matrix import (
    SUBSCRIPTION,
    Answer,
    Caller,
    key_caller,
    log_in,
    over_sse,
    over_websocket,
    user_caller,
)

# The tests that open subscriptions (WebSockets, SSE) run against one API worker and against two
# sharing the port (marked workers_1_and_2); the rest open none.
pytestmark = pytest.mark.timeout(120)

PLAYGROUND = "Polly Playground"
PINGABLE = "query($g: ID!, $c: ID) { pingableRoles(guildId: $g, channelId: $c) { id name } }"
VALIDATE = """query($g: ID!, $r: [ID!]!, $c: ID) {
  validateRoles(guildId: $g, roleIds: $r, channelId: $c) { roleId valid canPing reason }
}"""
REQUEST_ID = re.compile(r"[0-9a-f]{16}")


def request_id_of(response: httpx.Response) -> str:
    """The answer's X-Request-Id, which every answer of /graphql must carry."""
    given: str | None = response.headers.get("x-request-id")
    assert given is not None and REQUEST_ID.fullmatch(given), (response.status_code, response.headers)
    return given


@contextlib.asynccontextmanager
async def owned_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A redis-server only this test uses, so that it may stop or freeze it."""
    server = RedisServer(tmp_path / "redis")
    await server.start_async()
    try:
        yield server
    finally:
        await server.stop_async()


# -- 1. INTERNAL_SERVER_ERROR and X-Request-Id -------------------------------------------------------


async def test_an_unexpected_failure_is_an_internal_error_with_the_id_of_its_header_and_its_log(
    api: RunningApi, redis_url: str, fixture: Fixture, caplog: pytest.LogCaptureFixture
) -> None:
    """A guild document in Redis that cannot be decoded (written by a broken or foreign
    writer) makes the resolver fail in a way no code path expects: the client must get
    INTERNAL_SERVER_ERROR with an id it can quote, the same id as the answer's header and the
    log line of the failure, and nothing of the exception itself."""
    playground = guild_id(fixture, PLAYGROUND)
    garbage = b"\x00 not a guild document"
    with pytest.raises(orjson.JSONDecodeError) as decoding:
        orjson.loads(garbage)
    leaked_words = [str(decoding.value), "JSONDecodeError", "Traceback", 'File "', "orjson"]
    cache = aioredis.Redis.from_url(redis_url)
    try:
        await cache.set(api.services.role_cache.keys.guild_roles(playground), garbage)
    finally:
        await cache.aclose()

    caplog.set_level(logging.ERROR, logger="app.graphql.schema")
    ids = []
    for _ in range(2):
        response = await api.client.post(
            "/graphql", json={"query": PINGABLE, "variables": {"g": str(playground)}}
        )
        request_id = request_id_of(response)
        ids.append(request_id)
        for word in leaked_words:
            assert word not in response.text, (word, response.text)
        body = response.json()
        assert response.status_code == 200 and body["data"] is None, response.text
        [error] = body["errors"]
        assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}, body
        assert error["path"] == ["pingableRoles"]
        assert request_id in error["message"]

        # The operator's side: the failure is logged once, with the id and the traceback.
        logged = [r for r in caplog.records if request_id in r.getMessage()]
        assert len(logged) == 1, [r.getMessage() for r in caplog.records]
        assert logged[0].levelno == logging.ERROR and logged[0].exc_info is not None
        assert isinstance(logged[0].exc_info[1], orjson.JSONDecodeError)
    assert ids[0] != ids[1], "each request has its own id"


@pytest.mark.workers_1_and_2
async def test_every_answer_of_graphql_carries_a_request_id(api: RunningApi, fixture: Fixture) -> None:
    """Normal answers, answers from the response cache (GraphQL never runs) and each kind of
    refusal: a caller can always quote an id."""
    playground = str(guild_id(fixture, PLAYGROUND))
    pingable = {"query": PINGABLE, "variables": {"g": playground}}

    def looked_up() -> int:
        """Guild reads of every worker (whichever served the request)."""
        every = [services.role_cache.counters for services in api.every_services]
        return sum(counters.hits + counters.misses for counters in every)

    answers: dict[str, httpx.Response] = {
        "apiVersion": await api.client.post("/graphql", json={"query": "{ apiVersion }"}),
        "pingableRoles (computed)": await api.client.post("/graphql", json=pingable),
    }
    before = looked_up()
    answers["pingableRoles (from the response cache)"] = await api.client.post("/graphql", json=pingable)
    # GraphQL did not run (its loader would have read the guild): the answer came whole from Redis.
    assert looked_up() == before
    answers["GET query"] = await api.client.get("/graphql", params={"query": "{ apiVersion }"})
    for name, response in answers.items():
        assert response.status_code == 200 and "errors" not in response.json(), (name, response.text)
    refusals: dict[str, tuple[int, httpx.Response]] = {
        "unknown key": (
            401,
            await api.client.post(
                "/graphql", json={"query": "{ apiVersion }"}, headers={"Authorization": "Bearer nope"}
            ),
        ),
        "malformed JSON": (
            400,
            await api.client.post(
                "/graphql", content=b"{not json", headers={"Content-Type": "application/json"}
            ),
        ),
        "parse failure": (400, await api.client.post("/graphql", json={"query": "{ apiVersion"})),
        "wrong content type": (
            415,
            await api.client.post(
                "/graphql", content=b"{ apiVersion }", headers={"Content-Type": "text/plain"}
            ),
        ),
        "mutation over GET": (405, await api.client.get("/graphql", params={"query": "mutation { x }"})),
        "wrong method": (405, await api.client.put("/graphql", json={"query": "{ apiVersion }"})),
        "nothing acceptable": (
            406,
            await api.client.post(
                "/graphql", json={"query": "{ apiVersion }"}, headers={"Accept": "text/plain"}
            ),
        ),
        "body too large": (
            413,
            await api.client.post("/graphql", json={"query": "{ apiVersion }", "pad": "x" * 70_000}),
        ),
        "SSE with an unknown key": (
            401,
            await api.client.post(
                "/graphql",
                json={"query": SUBSCRIPTION, "variables": {"g": playground}},
                headers={"Authorization": "Bearer nope", "Accept": "text/event-stream"},
            ),
        ),
    }
    for name, (status, response) in refusals.items():
        assert response.status_code == status, (name, response.status_code, response.text)
        answers[name] = response
    ids = [request_id_of(response) for response in answers.values()]
    assert len(set(ids)) == len(ids), "each answer has its own id"


# -- 2. CANNOT_SEND_MESSAGES ----------------------------------------------------------------------


async def test_a_channel_the_bot_sees_but_cannot_write_in_pings_nothing(
    api: RunningApi, http: SandboxHttp, fixture: Fixture
) -> None:
    """A poll posted where the bot cannot write pings nobody, whatever the roles allow: each
    role's validation says CANNOT_SEND_MESSAGES and the channel's pingable list is empty."""
    playground = guild_id(fixture, PLAYGROUND)
    polls = channel_id(fixture, PLAYGROUND, "polls")
    # The bot's own member overwrite in #polls takes SEND_MESSAGES (nothing else): it still
    # sees the channel. Set through the sandbox's REST as Discord would take it.
    path = f"/channels/{polls}/permissions/{fixture.bot.id}"
    response, _ = await http.call(
        "PUT", path, json={"type": 1, "allow": "0", "deny": str(perms.SEND_MESSAGES)}
    )
    assert response.status == 204
    # Discord (the sandbox) agrees: the channel is visible to the bot, posting there is refused.
    response, _ = await http.call("GET", f"/channels/{polls}")
    assert response.status == 200
    response, body = await http.call("POST", f"/channels/{polls}/messages", json={"content": "a poll"})
    assert (response.status, body["code"]) == (403, 50013), body

    # Mentionable, not mentionable (the bot has MENTION_EVERYONE in the guild) and a hoisted
    # one: each would be pingable in a channel the bot can write in.
    roles = [role_id(fixture, PLAYGROUND, name) for name in ("Poll Voters", "Quiet Folk", "Moderators")]
    variables = {"g": str(playground), "r": [str(r) for r in roles], "c": str(polls)}
    status, body = await api.query(VALIDATE, variables)
    assert status == 200 and "errors" not in body, body
    assert body["data"]["validateRoles"] == [
        {"roleId": str(r), "valid": True, "canPing": False, "reason": "CANNOT_SEND_MESSAGES"} for r in roles
    ]
    status, body = await api.query(PINGABLE, {"g": str(playground), "c": str(polls)})
    assert (status, body) == (200, {"data": {"pingableRoles": []}}), body

    # The same roles in #general, from the same cached guild: it is the channel, not the roles.
    variables["c"] = str(channel_id(fixture, PLAYGROUND, "general"))
    _, body = await api.query(VALIDATE, variables)
    assert [r["canPing"] for r in body["data"]["validateRoles"]] == [True, True, True], body


# -- 3. connections that could not be identified --------------------------------------------------


# Sockets opened before every worker served one: the kernel picks each socket's worker, and the
# chance that this many all go to one of two is 2**-39.
MOST_TRIES = 40


async def websocket_answers(api: RunningApi, caller: Caller, variables: dict[str, Any]) -> list[Answer]:
    """The answers to graphql-transport-ws operations: one on a socket of its own, then two on
    one socket (each operation of a socket is answered for itself), and two more on another
    such socket until every worker of the API has served one (once, with one worker)."""
    answers = [await over_websocket(api, caller, variables)]
    serving: set[int] = set()
    while len(serving) < len(api.workers):
        assert len(answers) < 1 + 2 * MOST_TRIES, f"{len(answers)} answers, all from workers {serving}"
        async with websockets.connect(
            api.ws_url,
            subprotocols=[Subprotocol("graphql-transport-ws")],
            additional_headers=caller.ws_headers,
        ) as ws:
            serving.add(api.worker_of(ws.local_address))
            init: dict[str, Any] = {"type": "connection_init"}
            if caller.init_payload is not None:
                init["payload"] = caller.init_payload
            await ws.send(json.dumps(init))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            for operation in ("1", "2"):
                subscribe = {"query": SUBSCRIPTION, "variables": variables}
                await ws.send(json.dumps({"id": operation, "type": "subscribe", "payload": subscribe}))
                while (message := json.loads(await ws.recv()))["type"] == "ping":
                    pass
                assert message["id"] == operation, message
                payload = message["payload"]
                body = payload if message["type"] == "next" else {"data": None, "errors": payload}
                answers.append(Answer(200, body, json.dumps(message)))
    return answers


async def first_answer(ws: Any, operation: str, variables: dict[str, Any]) -> dict[str, Any]:
    """Subscribe on ``ws`` as ``operation``; the first message that answers it."""
    subscribe = {"query": SUBSCRIPTION, "variables": variables}
    await ws.send(json.dumps({"id": operation, "type": "subscribe", "payload": subscribe}))
    while (message := json.loads(await ws.recv()))["type"] == "ping":
        pass
    assert message["id"] == operation, message
    answer: dict[str, Any] = message
    return answer


def refused_as(answer: Answer, code: str) -> bool:
    """The operation got an error with ``code`` and no data at all."""
    return answer.codes == [code] and not (answer.body.get("data") or {}).get("guildRolesChanged")


def served(answer: Answer) -> bool:
    """The operation got the guild's current roles (its first message, as ``since: "0-0"`` asks)."""
    changed: dict[str, Any] = (answer.body.get("data") or {}).get("guildRolesChanged") or {}
    return "errors" not in answer.body and changed.get("kind") == "GUILD_RESYNCED"


async def assert_refused_everywhere(
    api: RunningApi, caller: Caller, variables: dict[str, Any], code: str
) -> None:
    """Each WebSocket operation is refused with ``code``; SSE is HTTP 503 with Retry-After."""
    for answer in await websocket_answers(api, caller, variables):
        assert refused_as(answer, code), (caller.name, answer.text)
    sse = await over_sse(caller, variables)
    assert sse.status == 503, (caller.name, sse)
    assert int(sse.headers["retry-after"]) >= 1, sse.headers
    assert REQUEST_ID.fullmatch(sse.headers.get("x-request-id", "")), sse.headers
    assert refused_as(sse, code), (caller.name, sse.text)


async def assert_served_everywhere(api: RunningApi, caller: Caller, variables: dict[str, Any]) -> None:
    for answer in await websocket_answers(api, caller, variables):
        assert served(answer), (caller.name, answer.text)
    sse = await over_sse(caller, variables)
    assert sse.status == 200 and served(sse), (caller.name, sse.text)


async def set_connections_allowed(postgres: PostgresServer, database: str, allowed: bool) -> None:
    """Open or close ``database`` to connections, ending the open ones when closing: to the API
    it is unreachable, as a database behind a failed network is, and it comes back intact."""
    admin = await postgres.admin()
    try:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database
            )
    finally:
        await admin.close()


@pytest.mark.workers_1_and_2
async def test_connections_opened_while_the_database_is_unreachable_are_refused_per_operation(
    api_factory: Callable[..., Awaitable[RunningApi]], postgres_server: PostgresServer, fixture: Fixture
) -> None:
    """Who presents a key or a login cookie cannot be told while the database is unreachable:
    the WebSocket stays (a client would only reconnect into the same outage) and each of its
    operations says SERVICE_UNAVAILABLE; SSE, which has a status to give, says 503 with
    Retry-After. Never the anonymous caller's UNAUTHENTICATED, which would tell the client its
    credentials are bad."""
    name = await postgres_server.create_database()
    try:
        api = await api_factory(database_url=postgres_server.url(name))
        playground = guild_id(fixture, PLAYGROUND)
        variables = {"g": str(playground), "since": "0-0"}
        # Never presented before the outage, so Redis holds no copy of it: only the database
        # can say who it is. The same for carol's login, whose guilds were never looked up.
        token = await create_key(api.settings, [playground], ["roles:read"])
        bearer = f"Bearer {token}"
        async with contextlib.AsyncExitStack() as stack:
            carol = await log_in(api, "carol")
            stack.push_async_callback(carol.aclose)
            in_init = key_caller(api, "key in connection_init", token)
            in_handshake = key_caller(api, "key in the handshake", token)
            in_handshake.ws_headers, in_handshake.init_payload = {"Authorization": bearer}, None
            for client in (in_init.client, in_handshake.client):
                stack.push_async_callback(client.aclose)
            callers = [in_init, in_handshake, user_caller(api, "carol", carol)]

            await set_connections_allowed(postgres_server, name, False)
            try:
                for caller in callers:
                    await assert_refused_everywhere(api, caller, variables, "SERVICE_UNAVAILABLE")
                # A socket that stays open through the outage.
                lasting = await stack.enter_async_context(
                    websockets.connect(
                        api.ws_url,
                        subprotocols=[Subprotocol("graphql-transport-ws")],
                        additional_headers=in_handshake.ws_headers,
                    )
                )
                await lasting.send(json.dumps({"type": "connection_init"}))
                assert json.loads(await lasting.recv())["type"] == "connection_ack"
                refused = await first_answer(lasting, "during", variables)
                assert refused["type"] == "error", refused
                assert refused["payload"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE", refused
            finally:
                await set_connections_allowed(postgres_server, name, True)
            # The same credentials, with the database back: served. It was the outage.
            for caller in callers:
                await assert_served_everywhere(api, caller, variables)
            # On the socket that stayed too, as SERVICE_UNAVAILABLE's "try again" promised.
            served_now = await first_answer(lasting, "after", variables)
            assert served_now["type"] == "next", served_now
            assert served_now["payload"]["data"]["guildRolesChanged"]["kind"] == "GUILD_RESYNCED", served_now
    finally:
        await postgres_server.drop_database(name)


@pytest.mark.workers_1_and_2
async def test_connections_opened_while_discord_fails_are_refused_per_operation(
    api: RunningApi, http: SandboxHttp, fixture: Fixture
) -> None:
    """The same for a person whose guilds Discord cannot list (and none listed earlier to fall
    back on): DISCORD_UNAVAILABLE per operation, SSE 503 with Retry-After."""
    playground = guild_id(fixture, PLAYGROUND)
    variables = {"g": str(playground), "since": "0-0"}
    # Logged in, but her guilds never looked up yet: only Discord can say what she may read.
    async with contextlib.aclosing(await log_in(api, "carol")) as client:
        carol = user_caller(api, "carol", client)
        fault = {"method": "GET", "route": "/users/@me/guilds", "status": 503, "count": 1000}
        await http.control("POST", "/_sandbox/faults", fault)
        try:
            await assert_refused_everywhere(api, carol, variables, "DISCORD_UNAVAILABLE")
        finally:
            await http.control("DELETE", "/_sandbox/faults")
        await assert_served_everywhere(api, carol, variables)


# -- 4. no rate limits while Redis is down --------------------------------------------------------


async def test_while_redis_is_down_nothing_is_rate_limited(
    api_factory: Callable[..., Awaitable[RunningApi]], fixture: Fixture, tmp_path: Path
) -> None:
    """The buckets live in Redis; without it the service answers (degraded) rather than
    refusing everyone: keys are checked against the database instead, and nobody is limited."""
    playground = str(guild_id(fixture, PLAYGROUND))
    pingable = {"query": PINGABLE, "variables": {"g": playground}}
    async with owned_redis(tmp_path) as server:
        api = await api_factory(rate_limit_burst=2, rate_limit_per_second=0.01, redis_url=server.url)
        anonymous_client = httpx.AsyncClient(base_url=api.url, timeout=30)  # no credentials at all
        try:
            # Redis up: the key's bucket holds two requests; the third is refused.
            statuses = [(await api.client.post("/graphql", json=pingable)).status_code for _ in range(3)]
            assert statuses == [200, 200, 429], statuses
            refused = await api.client.post("/graphql", json=pingable)
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
            assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
            request_id_of(refused)
            # Anonymous callers are limited by address (the key's first look-up took one too).
            anonymous_statuses = [
                (await anonymous_client.post("/graphql", json={"query": "{ apiVersion }"})).status_code
                for _ in range(3)
            ]
            assert 429 in anonymous_statuses, anonymous_statuses

            await server.stop_async()
            keyed = [await api.client.post("/graphql", json=pingable) for _ in range(20)]
            anonymous_answers = [
                await anonymous_client.post("/graphql", json={"query": "{ apiVersion }"}) for _ in range(20)
            ]
            for response in keyed:
                # The key is still checked (against the database) and its guild answered.
                assert response.status_code == 200, response.text
                body = response.json()
                assert "errors" not in body and body["data"]["pingableRoles"], body
            for response in anonymous_answers:
                assert response.status_code == 200, response.text
                assert "errors" not in response.json() and response.json()["data"]["apiVersion"], (
                    response.text
                )
            # Degraded, and saying so (the marker is read from the breaker as the answer is
            # written, so a request that straddles its cooldown may go without it).
            assert any("degraded" in r.json().get("extensions", {}) for r in keyed), keyed[0].text
            ready = await anonymous_client.get("/readyz")
            assert ready.json()["status"] == "degraded", ready.text
        finally:
            await anonymous_client.aclose()


# -- 5. a hanging Redis and the breaker -----------------------------------------------------------


async def test_a_hanging_redis_costs_a_timeout_per_breaker_cycle_not_per_call(
    api_factory: Callable[..., Awaitable[RunningApi]], fixture: Fixture, tmp_path: Path
) -> None:
    """redis-server frozen (SIGSTOP): connections open and commands are sent, but nothing is
    answered, so each command sent costs the API its socket timeout. What the API sent is
    counted afterwards, with MONITOR: a frozen server keeps what it was sent in its sockets and
    runs it when it resumes, commands of clients that gave up included."""
    requests = 20
    playground = str(guild_id(fixture, PLAYGROUND))
    pingable = {"query": PINGABLE, "variables": {"g": playground}}
    async with owned_redis(tmp_path) as server:
        api = await api_factory(redis_url=server.url)
        for _ in range(2):  # the guild cached, the key's record cached, connections open
            response = await api.client.post("/graphql", json=pingable)
            assert response.status_code == 200 and "errors" not in response.json(), response.text
        own = aioredis.Redis.from_url(server.url, decode_responses=True)
        watcher = aioredis.Redis.from_url(server.url, decode_responses=True)
        try:
            pid = int((await own.info("server"))["process_id"])
            own_address = (await own.client_info())["addr"]
            counters = api.services.role_cache.counters
            unavailable_before = counters.unavailable
            async with watcher.monitor() as monitor:
                os.kill(pid, signal.SIGSTOP)
                try:
                    answers = [await api.client.post("/graphql", json=pingable) for _ in range(requests)]
                    breaker_error = api.services.role_cache.breaker.last_error
                finally:
                    os.kill(pid, signal.SIGCONT)

                async def answers_again() -> bool:
                    with contextlib.suppress(aioredis.RedisError):
                        return bool(await own.ping())
                    return False

                # Everything sent during the freeze was in Redis's sockets before it resumed,
                # so it runs before this marker, sent once Redis answers again.
                await wait_until(answers_again, within=30)
                marker = "the freeze is over"
                await own.echo(marker)
                sent: list[str] = []
                async with asyncio.timeout(30):
                    while marker not in (seen := await monitor.next_command())["command"]:
                        address = f"{seen['client_address']}:{seen['client_port']}"
                        # Not the commands scripts run (they came with an EVALSHA), nor ours.
                        if seen["client_type"] == "tcp" and address != own_address:
                            sent.append(seen["command"])
        finally:
            await own.aclose()
            await watcher.aclose()
    for response in answers:
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body and body["data"]["pingableRoles"], body
    assert breaker_error is not None and "imeout" in breaker_error, breaker_error
    # Every request found the cache unavailable (its MGET of guild data alone, besides its
    # key check and the rest) ...
    assert counters.unavailable - unavailable_before >= requests
    # ... yet only a few commands ever reached Redis, each a timeout: the one that opened the
    # breaker and a probe per cooldown, not one per call.
    assert 1 <= len(sent) < requests, sent


async def test_a_poll_read_while_the_database_is_unreachable_is_service_unavailable_naming_nothing(
    api_factory: Callable[..., Awaitable[RunningApi]], postgres_server: PostgresServer, fixture: Fixture
) -> None:
    name = await postgres_server.create_database()
    try:
        api = await api_factory(database_url=postgres_server.url(name))
        token = await create_key(api.settings, [guild_id(fixture, PLAYGROUND)], ["polls:read"])
        headers = {"Authorization": f"Bearer {token}"}
        query = {"query": "{ poll(id: 1) { id } }"}
        first = await api.client.post("/graphql", json=query, headers=headers)  # the key is cached now
        assert first.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        await set_connections_allowed(postgres_server, name, False)
        try:
            response = await api.client.post("/graphql", json=query, headers=headers)
        finally:
            await set_connections_allowed(postgres_server, name, True)
        [error] = response.json()["errors"]
        assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE", error
        assert error["message"] == "The database cannot be used right now; try again in a moment."
        assert name not in response.text and "postgresql" not in response.text
    finally:
        await postgres_server.drop_database(name)
