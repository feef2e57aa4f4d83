"""Access on connections that outlive a request: SSE streams and WebSockets are checked again,
cookies count only from our own pages (behind a TLS proxy too), and what a WebSocket sends is
held to the same limits as a POST."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import websockets
from websockets.typing import Subprotocol

from app.access.credentials import public_origin
from app.sandbox.fixture import Fixture
from tests.conftest import (
    RunningApi,
    RunningBot,
    SandboxHttp,
    create_key,
    guild_id,
    revoke_key,
    role_id,
    wait_until,
)
from tests.postgres import PostgresServer
from tests.test_access_matrix import SUBSCRIPTION, log_in, over_websocket, user_caller

pytestmark = [pytest.mark.timeout(60), pytest.mark.workers_1_and_2]


async def test_an_sse_stream_of_a_revoked_key_ends_before_its_next_change(
    gateway_bot: RunningBot,
    api_factory: Callable[..., Awaitable[RunningApi]],
    http: SandboxHttp,
    redis_url: str,
    fixture: Fixture,
) -> None:
    api = await api_factory(api_key_cache_ttl=1)
    quiet = guild_id(fixture, "Quiet Corner")
    helpers = role_id(fixture, "Quiet Corner", "Helpers")
    token = await create_key(api.settings, [quiet], ["roles:read"])
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    body = {"query": SUBSCRIPTION, "variables": {"g": str(quiet), "since": "0-0"}}
    events: list[dict[str, Any]] = []
    async with api.client.stream("POST", "/graphql", json=body, headers=headers) as response:
        assert response.status_code == 200
        lines = response.aiter_lines()

        async def next_event() -> dict[str, Any]:
            async for line in lines:
                if line.startswith("data:") and line[5:].strip():
                    event: dict[str, Any] = json.loads(line[5:])
                    events.append(event)
                    return event
            return {}  # the stream ended

        async with asyncio.timeout(60):
            first = await next_event()
            assert first["data"]["guildRolesChanged"]["kind"] == "GUILD_RESYNCED"
            await revoke_key(api.settings, redis_url, token)
            # Changes keep coming; after the recheck interval (the key cache's 1 s) the stream
            # must end with UNAUTHENTICATED instead of carrying them.
            n = 0
            while True:
                n += 1
                await http.control("PATCH", f"/_sandbox/guilds/{quiet}/roles/{helpers}", {"name": f"H{n}"})
                event = await next_event()
                if "errors" in event or not event:
                    break
    assert "errors" in events[-1], events
    assert "revoked" in events[-1]["errors"][0]["message"]
    assert not events[-1].get("data")


async def test_a_session_cookie_from_a_foreign_page_stays_anonymous_whatever_the_init_payload(
    api_factory: Callable[..., Awaitable[RunningApi]], fixture: Fixture
) -> None:
    # "*" lets any page open a socket (for keys); cookies must still count only from ours.
    api = await api_factory(cors_origins=["*"])
    target = guild_id(fixture, "Polly Playground")
    async with contextlib.aclosing(await log_in(api, "alice")) as client:
        caller = user_caller(api, "alice", client)
        own = await over_websocket(api, caller, {"g": str(target), "since": "0-0"})
        assert own.body["data"]["guildRolesChanged"]["kind"] == "GUILD_RESYNCED", own.text

        caller.ws_headers["Origin"] = "https://evil.example"
        for payload in (None, {"authorization": None}, {"Authorization": 42}, {"authorization": ""}):
            caller.init_payload = payload  # type: ignore[assignment]
            answer = await over_websocket(api, caller, {"g": str(target), "since": "0-0"})
            assert answer.codes and answer.codes[0] in ("UNAUTHENTICATED", "NOT_FOUND"), (
                payload,
                answer.text,
            )
            assert "Moderators" not in answer.text


async def test_behind_a_tls_proxy_the_public_origin_counts_as_our_own(
    api_factory: Callable[..., Awaitable[RunningApi]], fixture: Fixture
) -> None:
    # Logged in through one API process; the proxied one shares its database and secret, and
    # is reached over plain http, as a proxy that ends TLS reaches it.
    direct = await api_factory()
    proxied = await api_factory(public_url="https://polly.example")
    target = guild_id(fixture, "Polly Playground")
    async with contextlib.aclosing(await log_in(direct, "alice")) as client:
        caller = user_caller(proxied, "alice", client)
        caller.ws_headers["Origin"] = "https://polly.example"
        answer = await over_websocket(proxied, caller, {"g": str(target), "since": "0-0"})
        assert answer.body["data"]["guildRolesChanged"]["kind"] == "GUILD_RESYNCED", answer.text
        caller.ws_headers["Origin"] = "https://elsewhere.example"
        elsewhere = await over_websocket(proxied, caller, {"g": str(target), "since": "0-0"})
        # A page of another origin may not open a socket here at all.
        assert elsewhere.status == 403 and "GUILD_RESYNCED" not in elsewhere.text, elsewhere
        logout = await client.post(f"{proxied.url}/auth/logout", headers={"Origin": "https://polly.example"})
        assert logout.status_code == 204, logout.text


def test_public_origin_is_what_browsers_send() -> None:
    assert public_origin("https://Polly.example/") == "https://polly.example"
    assert public_origin("https://polly.example:443/api") == "https://polly.example"
    assert public_origin("https://polly.example:8443") == "https://polly.example:8443"
    assert public_origin("http://localhost:8000") == "http://localhost:8000"


async def test_an_oversized_subscription_document_is_refused_at_once(api: RunningApi) -> None:
    """The shared-subscription path parses documents itself: under the same limits as a POST."""
    # Under the token limit, but one field 390 times over: quadratic work for graphql-core's
    # own rules, unless the API's limits turn it away first.
    query = "subscription { guildRolesChanged(guildId: 1) { %s } }" % ("pingableRoles { id } " * 390)
    url = api.ws_url
    async with websockets.connect(
        url, subprotocols=[Subprotocol("graphql-transport-ws")], additional_headers=api.auth, max_size=None
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        # How fast is bench/abuse's business ("one field 390 times"); here, that it is refused.
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        async with asyncio.timeout(30):
            while (message := json.loads(await ws.recv()))["type"] == "ping":
                pass
    assert message["type"] == "error", message
    assert message["payload"][0]["extensions"]["code"] in ("GRAPHQL_PARSE_FAILED", "QUERY_TOO_COMPLEX")


async def test_keys_on_websockets_cost_the_address_a_token(
    api_factory: Callable[..., Awaitable[RunningApi]], fixture: Fixture
) -> None:
    api = await api_factory(rate_limit_burst=3, rate_limit_per_second=0.01)
    target = guild_id(fixture, "Polly Playground")
    url = api.ws_url
    made_up = {"Authorization": "Bearer polly_AAAAAAAAAAAA_" + "b" * 32}
    codes = []
    for _ in range(5):
        async with websockets.connect(
            url, subprotocols=[Subprotocol("graphql-transport-ws")], additional_headers=made_up
        ) as ws:
            await ws.send(json.dumps({"type": "connection_init"}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            subscribe = {"query": SUBSCRIPTION, "variables": {"g": str(target), "since": "0-0"}}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
            async with asyncio.timeout(5):
                message = json.loads(await ws.recv())
            codes.append(message["payload"][0]["extensions"]["code"] if message["type"] == "error" else "")
    # The handshake's look-up and the operation each take a token: the second connection's
    # operation is already over the limit.
    assert codes == ["UNAUTHENTICATED"] + ["RATE_LIMITED"] * 4, codes


async def test_a_recheck_that_cannot_reach_the_database_keeps_the_socket_and_says_so(
    api_factory: Callable[..., Awaitable[RunningApi]],
    postgres_server: PostgresServer,
    fixture: Fixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The database goes away under an open socket: its access cannot be checked again, and
    that is no reason to drop a client who was allowed (it is asked again next time)."""
    name = await postgres_server.create_database()
    api = await api_factory(database_url=postgres_server.url(name), api_key_cache_ttl=1)
    target = guild_id(fixture, "Polly Playground")
    token = await create_key(api.settings, [target], ["roles:read"])
    async with websockets.connect(
        api.ws_url,
        subprotocols=[Subprotocol("graphql-transport-ws")],
        additional_headers={"Authorization": f"Bearer {token}"},
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        subscribe = {"query": SUBSCRIPTION, "variables": {"g": str(target), "since": "0-0"}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
        first = json.loads(await ws.recv())
        assert first["payload"]["data"]["guildRolesChanged"]["kind"] == "GUILD_RESYNCED", first

        with caplog.at_level(logging.WARNING, logger="app.graphql.streaming"):
            await postgres_server.drop_database(name)  # its connections end with it

            async def warned() -> bool:
                return "could not be checked again" in caplog.text

            await wait_until(warned, within=30)
        # Still open and answering: a ping gets its pong.
        await ws.send(json.dumps({"type": "ping"}))
        async with asyncio.timeout(10):
            while (message := json.loads(await ws.recv()))["type"] == "ping":
                pass
        assert message["type"] == "pong", message
