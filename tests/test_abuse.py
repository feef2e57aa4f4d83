"""Abusive requests get a prompt, clear refusal, and leave the server serving everyone else.

Each HTTP case checks what the caller sees (the status, the error's code and sentence) and
that the server serves on. How long a refusal takes (``Server-Timing: app;dur=<ms>``, under
100 ms is the target) is measured by bench/abuse, never by a test: timings fail on a busy machine.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio
import websockets
from websockets.asyncio.client import ClientConnection

from app.sandbox.fixture import Fixture
from tests.conftest import RunningApi, create_key, guild_id, until_closed, wait_until

# The tests on WebSockets run against one API worker and against two sharing the port (marked
# workers_1_and_2): the rate limit's buckets are in Redis, shared by the workers.
pytestmark = pytest.mark.timeout(60)

ApiFactory = Callable[..., Awaitable[RunningApi]]

GOOD = "{ apiVersion }"
JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"
# Every field of a Role, nested objects included: what a greedy client would ask for.
ROLE_FIELDS = (
    "id name color colors { primaryColor secondaryColor tertiaryColor } position hoist mentionable"
    " managed icon unicodeEmoji tags { botId integrationId subscriptionListingId premiumSubscriber"
    " availableForPurchase guildConnections } permissions"
)


def server_ms(response: httpx.Response) -> float:
    """The server's own time to start answering, from ``Server-Timing: app;dur=<ms>``."""
    match = re.search(r"\bapp;dur=([0-9.]+)", response.headers.get("server-timing", ""))
    assert match is not None, f"no Server-Timing app;dur in {dict(response.headers)}"
    return float(match.group(1))


def errors_of(response: httpx.Response) -> list[dict[str, Any]]:
    body = response.json()
    assert "data" not in body or body["data"] is None, body
    errors: list[dict[str, Any]] = body["errors"]
    assert errors and all(error["message"] and error["extensions"]["code"] for error in errors), body
    return errors


def refused(response: httpx.Response, status: int, code: str, mentions: str) -> dict[str, Any]:
    """The response refuses the request with ``status``, an error with ``code`` whose message
    mentions ``mentions``; that error. (How promptly is bench/abuse's business.)"""
    assert response.status_code == status, (response.status_code, response.text[:500])
    errors = errors_of(response)
    matching = [e for e in errors if e["extensions"]["code"] == code and mentions in e["message"]]
    assert matching, errors
    server_ms(response)  # a refusal, too, says its server time: bench/abuse reads it
    return matching[0]


async def post(api: RunningApi, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
    body: dict[str, Any] = {"query": query}
    if variables is not None:
        body["variables"] = variables
    return await api.client.post("/graphql", json=body)


async def still_serves(api: RunningApi) -> None:
    """A normal query still gets its normal answer."""
    response = await post(api, GOOD)
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"apiVersion": "0.1.0"}}


@pytest_asyncio.fixture
async def served(api: RunningApi) -> RunningApi:
    """The API after one ordinary request (so a timing measures the abuse, not a cold start)."""
    await still_serves(api)
    return api


async def raw_exchange(api: RunningApi, head: bytes, body: bytes = b"", *, within: float = 30) -> bytes:
    """Send ``head`` and ``body`` over a plain socket, then read the answer's status line and
    headers without sending anything more (the server must answer what it has)."""
    port = int(api.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + body)
        await writer.drain()
        async with asyncio.timeout(within):
            return await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
        await writer.wait_closed()


def request_head(api: RunningApi, extra: str) -> bytes:
    return (
        "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {api.key}\r\n{extra}\r\n"
    ).encode()


# -- documents too big for their own good ---------------------------------------------------------


def introspection_nested(levels: int) -> str:
    """A valid document ``levels`` fields deep: ``__Type.ofType`` nests as far as one likes."""
    inner = levels - 5  # __schema, types, fields, type ... name
    return (
        "{ __schema { types { fields { type { " + "ofType { " * inner + "name" + " }" * inner + " } } } } }"
    )


def fragment_nested(levels: int) -> str:
    """The same depth, hidden in a chain of fragments that each add one level."""
    inner = levels - 2  # __schema and types; then one level per fragment
    fragments = [f"fragment T{i} on __Type {{ ofType {{ ...T{i + 1} }} }}" for i in range(inner - 1)]
    fragments.append(f"fragment T{inner - 1} on __Type {{ name }}")
    return "{ __schema { types { ...T0 } } }\n" + "\n".join(fragments)


def fields_nested(levels: int) -> str:
    """50 levels of fields that do not exist: the depth must still be what is reported."""
    return "{ " + "a { " * (levels - 1) + "b" + " }" * (levels - 1) + " }"


@pytest.mark.parametrize("document", [introspection_nested, fragment_nested, fields_nested])
async def test_a_query_nested_50_deep_is_refused_by_the_depth_limit(
    served: RunningApi, document: Callable[[int], str]
) -> None:
    query = document(50)
    assert len(query.encode()) < served.settings.max_body_bytes
    response = await post(served, query)
    error = refused(response, 400, "QUERY_TOO_COMPLEX", "nests 50 levels deep")
    assert f"at most {served.settings.max_query_depth}" in error["message"]
    # The limit is the limit: ten levels of the same kind pass it.
    if document is introspection_nested:
        assert (await post(served, document(10))).status_code == 200
    await still_serves(served)


async def test_a_document_nested_past_the_parsers_limit_is_a_parse_error(served: RunningApi) -> None:
    """Hundreds of levels (within the token limit) never reach validation, let alone a stack
    overflow: the parser refuses them."""
    for nested in (fields_nested(300), "{ " + "... on Query { " * 300 + "apiVersion" + " }" * 300 + " }"):
        refused(await post(served, nested), 400, "GRAPHQL_PARSE_FAILED", "nested too deeply")
    await still_serves(served)


def aliased(count: int, field: str = "apiVersion") -> str:
    return "{ " + " ".join(f"a{i}: {field}" for i in range(count)) + " }"


async def test_a_thousand_aliases_are_refused_by_the_alias_limit(api_factory: ApiFactory) -> None:
    # 1,000 aliases are 3,000 tokens: with the default token limit that limit answers first
    # (below); with room for the tokens, the alias limit itself must.
    api = await api_factory(max_tokens=10_000)
    await still_serves(api)
    for variant in range(10):  # every time, not once: each a new document, which no cache knows
        query = aliased(1000) + " " * variant
        error = refused(await post(api, query), 400, "QUERY_TOO_COMPLEX", "uses 1000 aliases")
        assert f"at most {api.settings.max_aliases}" in error["message"]
    assert (await post(api, aliased(api.settings.max_aliases))).status_code == 200
    refused(await post(api, aliased(api.settings.max_aliases + 1)), 400, "QUERY_TOO_COMPLEX", "aliases")
    await still_serves(api)


async def test_a_thousand_aliases_within_default_limits_are_refused_too(served: RunningApi) -> None:
    refused(await post(served, aliased(1000)), 400, "GRAPHQL_PARSE_FAILED", "tokens")
    refused(await post(served, aliased(31)), 400, "QUERY_TOO_COMPLEX", "uses 31 aliases")
    await still_serves(served)


async def test_a_20000_token_document_is_refused_while_parsing(served: RunningApi) -> None:
    query = "{ " + "a " * 20_000 + "}"
    assert len(query.encode()) < served.settings.max_body_bytes  # the token limit, not the size
    error = refused(await post(served, query), 400, "GRAPHQL_PARSE_FAILED", "tokens")
    assert str(served.settings.max_tokens) in error["message"]
    await still_serves(served)


async def test_an_over_cost_query_is_refused_before_reading_any_guild(
    served: RunningApi, fixture: Fixture
) -> None:
    guild = guild_id(fixture, "Polly Playground")
    every_role = f'guildRoles(guildId: "{guild}") {{ {ROLE_FIELDS} }}'
    query = "{ " + " ".join(f"r{i}: {every_role}" for i in range(25)) + " }"
    served.sandbox.stats.reset()
    error = refused(await post(served, query), 400, "QUERY_TOO_COMPLEX", "would cost")
    assert f"at most {served.settings.max_query_cost}" in error["message"]
    assert served.rest_calls() == 0  # refused at validation: Discord was never asked
    # One guild's worth of the same is fine.
    one = await post(served, f"{{ {every_role} }}")
    assert one.status_code == 200 and one.json()["data"]["guildRoles"]
    await still_serves(served)


@pytest.mark.parametrize(
    "query",
    [
        "fragment A on Query { ...B } fragment B on Query { ...A } query { ...A }",
        "fragment A on Query { apiVersion ...A } { ...A }",
        "fragment A on Query { ...B } fragment B on Query { ...C } fragment C on Query { ...A } { ...B }",
        "fragment A on Query { viewer { ...V } } fragment V on Viewer { id ... on Viewer { ...V } } { ...A }",
    ],
)
async def test_fragment_cycles_are_a_validation_error(served: RunningApi, query: str) -> None:
    refused(await post(served, query), 400, "GRAPHQL_VALIDATION_FAILED", "Cannot spread fragment")
    await still_serves(served)


async def test_exponentially_spreading_fragments_are_refused_by_cost(served: RunningApi) -> None:
    """Each fragment spreads the one before twice: 2^40 fields from a few hundred tokens."""
    fragments = ["fragment F0 on Query { apiVersion }"]
    fragments += [f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, 41)]
    query = "{ ...F40 }\n" + "\n".join(fragments)
    refused(await post(served, query), 400, "QUERY_TOO_COMPLEX", "would cost")
    await still_serves(served)


async def test_a_document_repeating_one_field_is_answered(served: RunningApi) -> None:
    """A within-limits document (1,560 tokens, no aliases, depth 2, cost 780) that repeats one
    field hundreds of times: GraphQL's rule that repeated fields can be merged compares every
    pair of them. It is answered, and the server serves on; bench/abuse times it."""
    query = "{ " + "viewer { id } " * 390 + "}"
    response = await post(served, query)
    assert response.status_code < 500, response.text[:500]
    await still_serves(served)


def live_blocks() -> int:
    """Memory blocks Python holds for live objects in this process (the server's included)."""
    gc.collect()
    return sys.getallocatedblocks()


async def test_distinct_refused_documents_are_not_hoarded(served: RunningApi) -> None:
    """Twenty different documents, each as long as the token limit allows and each refused:
    the server keeps little of any of them. (A cache bounded by its number of entries holds
    whatever size each entry is: one caller could pin gigabytes.)"""
    before = live_blocks()
    for n in range(20):
        query = "{ " + " ".join(f"f{n}_{i}" for i in range(1990)) + " }"  # 1,992 tokens
        response = await post(served, query)
        assert response.status_code == 400
        assert errors_of(response)[0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    kept = live_blocks() - before
    # A parsed document of this size is some 20,000 objects; a refused one should leave none.
    assert kept < 20 * 1000, f"{kept} objects' memory blocks still held after 20 refused documents"
    await still_serves(served)


# -- request bodies ----------------------------------------------------------------------------------

TWO_MB = 2 * 1024 * 1024


def two_megabytes() -> bytes:
    return b'{"query": "{ apiVersion }", "padding": "' + b"x" * TWO_MB + b'"}'


async def test_a_2mb_body_is_refused_with_413(served: RunningApi) -> None:
    response = await served.client.post("/graphql", content=two_megabytes(), headers={"Content-Type": JSON})
    refused(response, 413, "BAD_REQUEST", f"over {served.settings.max_body_bytes} bytes")
    await still_serves(served)


async def test_a_2mb_body_is_refused_before_it_is_sent(served: RunningApi) -> None:
    """Content-Length says 2 MB and not one byte of the body follows: the answer comes anyway."""
    head = await raw_exchange(served, request_head(served, f"Content-Length: {TWO_MB}\r\n"))
    assert head.startswith(b"HTTP/1.1 413"), head


async def test_a_chunked_2mb_body_is_refused_with_413(served: RunningApi) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"query": "{ apiVersion }", "padding": "'
        for _ in range(TWO_MB // 8192):
            yield b"x" * 8192
        yield b'"}'

    # A generator body has no Content-Length: httpx sends it chunked.
    response = await served.client.post("/graphql", content=chunks(), headers={"Content-Type": JSON})
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    refused(response, 413, "BAD_REQUEST", f"over {served.settings.max_body_bytes} bytes")
    await still_serves(served)


async def test_a_chunked_body_is_refused_once_past_the_limit_not_at_its_end(served: RunningApi) -> None:
    """Past the limit, the server answers without waiting for the rest (which never comes)."""
    limit = served.settings.max_body_bytes
    chunk = b"x" * 4096
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(limit // len(chunk) + 2))
    head = await raw_exchange(served, request_head(served, "Transfer-Encoding: chunked\r\n"), body)
    assert head.startswith(b"HTTP/1.1 413"), head


async def test_a_query_string_over_the_limit_is_refused_with_414(api_factory: ApiFactory) -> None:
    # A smaller limit than the default (64 KiB, which test_transport_limits covers at the
    # request line's own bound) shows the endpoint's answer to a query string over it.
    api = await api_factory(max_body_bytes=4096)
    response = await api.client.get("/graphql", params={"query": "{ " + "apiVersion " * 500 + "}"})
    refused(response, 414, "BAD_REQUEST", "use POST")
    assert (await api.client.get("/graphql", params={"query": GOOD})).status_code == 200
    await still_serves(api)


async def test_a_100kb_url_is_refused_by_the_server(served: RunningApi) -> None:
    """Longer than httpx lets a URL be, so written by hand."""
    query = quote("{ " + "apiVersion " * 9_000 + "}")
    head = f"GET /graphql?query={query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    port = int(served.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode())
        async with asyncio.timeout(5):
            status = await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()
    assert status.startswith(b"HTTP/1.1 414 "), status  # ours, with a sentence, not uvicorn's 400
    await still_serves(served)


@pytest.mark.parametrize(
    "content",
    [b'{"query": "{ apiVersion }"', b"{'query': '{ apiVersion }'}", b"\xff\xfe\x00garbage", b""],
)
async def test_malformed_json_gets_400_with_a_sentence(served: RunningApi, content: bytes) -> None:
    response = await served.client.post("/graphql", content=content, headers={"Content-Type": JSON})
    error = refused(response, 400, "BAD_REQUEST", "not valid JSON")
    assert error["message"].endswith(".") and error["message"][0].isupper()
    await still_serves(served)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_a_wrong_content_type_gets_415(served: RunningApi, content_type: str | None) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    # Even a body that would be a fine request as JSON.
    content = json.dumps({"query": GOOD}).encode()
    response = await served.client.post("/graphql", content=content, headers=headers)
    refused(response, 415, "BAD_REQUEST", "Content-Type: application/json")
    await still_serves(served)


async def test_huge_variables_are_refused(served: RunningApi, fixture: Fixture) -> None:
    limit = served.settings.max_body_bytes
    query = "query($g: ID!, $r: [ID!]!) { validateRoles(guildId: $g, roleIds: $r) { roleId } }"
    guild = str(guild_id(fixture, "Polly Playground"))
    # Over the body limit: refused as a body.
    response = await post(served, query, {"g": guild, "r": ["1" * 19] * (limit // 20)})
    refused(response, 413, "BAD_REQUEST", "bytes")
    # Within it, the thousands of ids are refused by the field, before any guild is read.
    served.sandbox.stats.reset()
    response = await post(served, query, {"g": guild, "r": [str(i) for i in range(9000)]})
    assert response.status_code == 200
    assert [e["extensions"]["code"] for e in errors_of(response)] == ["BAD_USER_INPUT"]
    assert "at most 250" in errors_of(response)[0]["message"]
    assert served.rest_calls() == 0
    # A variable nested thousands of lists deep.
    deep = b'{"query": "query($g: ID!) { guildRoles(guildId: $g) { id } }", "variables": {"g": '
    deep += b"[" * 5000 + b"]" * 5000 + b"}}"
    response = await served.client.post("/graphql", content=deep, headers={"Content-Type": JSON})
    assert response.status_code == 400
    assert errors_of(response)[0]["extensions"]["code"] in ("BAD_REQUEST", "BAD_USER_INPUT")
    await still_serves(served)


async def test_introspection_can_be_turned_off(api_factory: ApiFactory) -> None:
    api = await api_factory(introspection=False)
    await still_serves(api)
    for query in (
        "{ __schema { types { name } } }",
        '{ __type(name: "Query") { fields { name } } }',
        introspection_nested(6),
    ):
        refused(await post(api, query), 400, "GRAPHQL_VALIDATION_FAILED", "introspection")
    # What clients need without introspection still works.
    response = await post(api, "{ __typename apiVersion }")
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query", "apiVersion": "0.1.0"}}


# -- rate limits ---------------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def limited(api_factory: ApiFactory) -> RunningApi:
    return await api_factory(rate_limit_burst=5, rate_limit_per_second=1)


@pytest_asyncio.fixture
async def clients(limited: RunningApi) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """Clients of the limited API, each from the address and with the headers asked for."""
    made: list[httpx.AsyncClient] = []

    def make(headers: dict[str, str] | None = None, address: str = "127.0.0.1") -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(local_address=address)
        client = httpx.AsyncClient(base_url=limited.url, headers=headers, transport=transport, timeout=10)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


async def statuses(client: httpx.AsyncClient, count: int) -> list[httpx.Response]:
    return [await client.post("/graphql", json={"query": GOOD}) for _ in range(count)]


def rate_limited(response: httpx.Response) -> None:
    error = refused(response, 429, "RATE_LIMITED", "Too many requests")
    assert int(response.headers["retry-after"]) >= 1
    assert re.search(r"retry in \d+ s", error["message"]), error


async def test_a_burst_past_the_rate_limit_gets_429s_and_nobody_else_does(
    limited: RunningApi, clients: Callable[..., httpx.AsyncClient]
) -> None:
    guilds = [guild.id for guild in limited.sandbox.fixture.guilds]
    key_b = await create_key(limited.settings, guilds, ["roles:read"], name="b")
    answers = await statuses(limited.client, 20)
    codes = [answer.status_code for answer in answers]
    assert codes[:5] == [200] * 5, codes  # the burst
    assert codes[-1] == 429 and codes.count(429) >= 12, codes  # then one a second at most
    for answer in answers:
        if answer.status_code == 429:
            rate_limited(answer)
    # Another key and an anonymous caller from the same address are untouched.
    b = clients({"Authorization": f"Bearer {key_b}"})
    assert [r.status_code for r in await statuses(b, 2)] == [200, 200]
    assert (await statuses(clients(), 1))[0].status_code == 200
    # And key A is still turned away: its bucket, not a global one, is empty.
    rate_limited((await statuses(limited.client, 1))[0])


async def test_wrong_credentials_spend_only_the_senders_address_bucket(
    limited: RunningApi, clients: Callable[..., httpx.AsyncClient]
) -> None:
    guilds = [guild.id for guild in limited.sandbox.fixture.guilds]
    key_b = await create_key(limited.settings, guilds, ["roles:read"], name="b")
    prefix, key_id, secret = key_b.split("_", 2)
    wrong_secret = f"{prefix}_{key_id}_{'A' * len(secret)}"  # key B's public id, a guessed secret
    guesser = clients({"Authorization": f"Bearer {wrong_secret}"}, address="127.0.0.2")
    answers = await statuses(guesser, 12)
    codes = [answer.status_code for answer in answers]
    assert codes[:5] == [401] * 5 and codes[-1] == 429, codes
    for answer in answers:
        if answer.status_code == 401:
            assert answer.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        else:
            rate_limited(answer)
    # Malformed credentials from that address are turned away at once too.
    rate_limited((await statuses(clients({"Authorization": "Bearer nonsense"}, address="127.0.0.2"), 1))[0])
    rate_limited((await statuses(clients(address="127.0.0.2"), 1))[0])
    # Key B, whose id was used, keeps its whole burst; other addresses are untouched.
    b = clients({"Authorization": f"Bearer {key_b}"})
    assert [r.status_code for r in await statuses(b, 5)] == [200] * 5
    assert (await statuses(clients(), 1))[0].status_code == 200
    assert (await statuses(limited.client, 1))[0].status_code == 200


async def operation_results(ws: ClientConnection, count: int, within: float = 5) -> list[dict[str, Any]]:
    """Operation messages until ``count`` operations have ended (complete or error)."""
    received: list[dict[str, Any]] = []
    async with asyncio.timeout(within):
        while sum(m["type"] in ("complete", "error") for m in received) < count:
            message = json.loads(await ws.recv())
            if message["type"] not in ("ping", "pong"):
                received.append(message)
    return received


@pytest.mark.workers_1_and_2
async def test_operations_past_the_rate_limit_on_one_socket_get_rate_limited_errors(
    api_factory: ApiFactory,
) -> None:
    api = await api_factory(rate_limit_burst=3, rate_limit_per_second=1)
    async with websockets.connect(
        api.ws_url, subprotocols=["graphql-transport-ws"], additional_headers=api.auth
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        for operation in range(10):
            await ws.send(json.dumps({"id": str(operation), "type": "subscribe", "payload": {"query": GOOD}}))
        messages = await operation_results(ws, 10)
    served = [m for m in messages if m["type"] == "next"]
    errors = [m for m in messages if m["type"] == "error"]
    assert all(m["payload"] == {"data": {"apiVersion": "0.1.0"}} for m in served)
    assert 3 <= len(served) <= 4, messages  # the burst (and at most one refilled token)
    assert len(errors) == 10 - len(served), messages
    for message in errors:
        (error,) = message["payload"]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert error["extensions"]["retryAfter"] >= 1
    # Over HTTP the same caller is limited too (one bucket per caller), and others are not.
    rate_limited((await statuses(api.client, 1))[0])
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as anonymous:
        assert (await statuses(anonymous, 1))[0].status_code == 200


@pytest.mark.workers_1_and_2
async def test_a_websocket_message_over_the_body_limit_closes_the_socket(served: RunningApi) -> None:
    limit = served.settings.max_body_bytes
    async with websockets.connect(
        served.ws_url, subprotocols=["graphql-transport-ws"], additional_headers=served.auth
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        padding = " " * limit  # whitespace: a valid document, were it processed
        await ws.send(json.dumps({"id": "big", "type": "subscribe", "payload": {"query": GOOD + padding}}))
        received = await until_closed(ws)
    assert ws.close_code == 1009  # message too big
    assert not [m for m in received if m["type"] in ("next", "complete", "error")], received
    await still_serves(served)


async def test_the_server_serves_normally_after_every_kind_of_abuse(served: RunningApi) -> None:
    """All of the above on one server, at once, then ordinary requests."""
    headers = {"Content-Type": JSON}
    abuse = [
        served.client.post("/graphql", json={"query": introspection_nested(50)}),
        served.client.post("/graphql", json={"query": aliased(1000)}),
        served.client.post("/graphql", content=two_megabytes(), headers=headers),
        served.client.post("/graphql", json={"query": "{ " + "a " * 20_000 + "}"}),
        served.client.post("/graphql", content=b"{nope", headers=headers),
        served.client.post("/graphql", content=b"{ apiVersion }", headers={"Content-Type": "text/plain"}),
        served.client.post("/graphql", json={"query": "fragment A on Query { ...A } { ...A }"}),
        served.client.post(
            "/graphql", content=b'{"query": "{ apiVersion }", "variables": ' + b"[" * 5000, headers=headers
        ),
        served.client.post("/graphql", json={"query": GOOD, "variables": {str(n): n for n in range(5000)}}),
    ]
    answers = await asyncio.gather(*abuse)
    assert [a.status_code for a in answers] == [400, 400, 413, 400, 400, 415, 400, 400, 200]
    for _ in range(3):
        await still_serves(served)
    health = await served.client.get("/healthz")
    assert health.status_code == 200


async def test_a_client_leaving_mid_body_is_no_error(
    served: RunningApi, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that hangs up half-way through its body ended its own request: nothing to
    log as a fault, and the API serves on."""
    port = int(served.url.rsplit(":", 1)[1])
    with caplog.at_level(logging.DEBUG, logger="app"):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_head(served, "Content-Length: 1000\r\n") + b'{"query": "{ api')
        await writer.drain()

        async def reading() -> bool:
            return "left before its request body arrived" in caplog.text

        writer.close()
        await writer.wait_closed()
        await wait_until(reading, within=30)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text
    await still_serves(served)
