"""Generated requests against the running API over real HTTP: never a 500, always a GraphQL answer.

Queries come from ``schema.graphql`` through hypothesis-graphql, valid ones and ones with one
schema violation each, with ID arguments drawn from the fixture's real guilds, roles and
channels, unknown ids and arbitrary text; sent with the API key or anonymously, by POST or GET,
in either JSON media type. Then raw bodies: arbitrary bytes and JSON values.

Hypothesis runs synchronously, so each fuzz run happens in a worker thread with a blocking
httpx client, while uvicorn keeps serving from the test's event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import graphql
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, nodes, queries

from app.sandbox.fixture import Fixture
from tests.conftest import REPO, RunningApi, RunningBot

pytestmark = pytest.mark.timeout(120)

SCHEMA = (REPO / "schema.graphql").read_text()
JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"
# Generation and a round trip take a while per example; that is the point, not a problem.
SLOW_IS_FINE = [
    HealthCheck.too_slow,
    HealthCheck.filter_too_much,
    HealthCheck.data_too_large,
    HealthCheck.large_base_example,
]


def id_values(fixture: Fixture) -> st.SearchStrategy[graphql.ValueNode]:
    """ID arguments: mostly the fixture's own ids (so guild data is really read), some unknown
    or impossible snowflakes, some arbitrary text; as strings, sometimes as Int literals."""
    guilds = [str(guild.id) for guild in fixture.guilds]
    roles = [str(role.id) for guild in fixture.guilds for role in guild.roles]
    channels = [str(channel.id) for guild in fixture.guilds for channel in guild.channels]
    # A few unknown ids only: each one costs a Discord call once, then is remembered.
    unknown = ["0", "1", "424242", str(2**63 - 1), str(2**64 - 1), str(2**64), "-7", "9" * 21]
    # Weighted towards guild ids, which every root field but apiVersion and viewer takes.
    return st.one_of(
        *[st.sampled_from(guilds).map(nodes.String)] * 6,
        st.sampled_from(roles).map(nodes.String),
        st.sampled_from(channels).map(nodes.String),
        st.sampled_from(unknown).map(nodes.String),
        st.text(max_size=30).map(nodes.String),
        st.sampled_from([1, 424242, 2**40]).map(nodes.Int),  # GraphQL takes ints as IDs too
    )


def check_answer(response: httpx.Response, *, valid_document: bool = False) -> dict[str, Any]:
    """What every /graphql answer must be: no 5xx, a JSON object with data or errors, each
    error with a message and a code, and no internal error hidden in a 200."""
    assert response.status_code < 500, (response.status_code, response.text[:1000])
    try:
        body = response.json()
    except json.JSONDecodeError as error:
        raise AssertionError(f"not JSON: {response.status_code} {response.text[:300]!r}") from error
    assert isinstance(body, dict) and ("data" in body or "errors" in body), body
    for error in body.get("errors") or []:
        assert isinstance(error.get("message"), str) and error["message"], body
        code = (error.get("extensions") or {}).get("code")
        assert isinstance(code, str) and code, body
        assert code != "INTERNAL_SERVER_ERROR", body
        if valid_document:
            # A document hypothesis-graphql built to be valid is only ever refused by our limits.
            assert code != "GRAPHQL_VALIDATION_FAILED", body
            assert code != "GRAPHQL_PARSE_FAILED" or "tokens" in error["message"], body
    if response.status_code == 200 and "errors" not in body:
        assert isinstance(body["data"], dict), body
    return body


async def test_generated_queries_never_get_a_500(
    api: RunningApi, fixture: Fixture, bot_factory: Callable[[str], Awaitable[RunningBot]], redis_url: str
) -> None:
    await bot_factory(redis_url)  # the guilds cached, botGuilds listing them, as in production
    ids = id_values(fixture)
    # Documents whose every id is a guild the bot is in: answered with data, all of it.
    bot_guilds = [str(g.id) for g in fixture.guilds if any(m.user_id == fixture.bot.id for m in g.members)]
    readable = {"ID": st.sampled_from(bot_guilds).map(nodes.String)}
    generated = st.one_of(
        queries(SCHEMA, custom_scalars={"ID": ids}).map(lambda q: (q, True)),
        queries(SCHEMA, custom_scalars={"ID": ids}, mode=Mode.NEGATIVE).map(lambda q: (q, False)),
        queries(
            SCHEMA, fields=["apiVersion", "guildRoles", "botGuilds", "viewer"], custom_scalars=readable
        ).map(lambda q: (q, True)),
    )
    sent: list[str] = []
    with_data: list[str] = []

    def run_fuzz() -> None:
        with (
            httpx.Client(base_url=api.url, headers=api.auth, timeout=30) as keyed,
            httpx.Client(base_url=api.url, timeout=30) as anonymous,
        ):
            # database=None: nothing written into the checkout.
            @settings(max_examples=1000, deadline=None, database=None, suppress_health_check=SLOW_IS_FINE)
            @given(
                document=generated,
                # One in five anonymous, one in five by GET (False first: the simplest case).
                anonymous_caller=st.sampled_from([False, False, False, False, True]),
                use_get=st.sampled_from([False, False, False, False, True]),
                accept=st.sampled_from([None, JSON, GRAPHQL_RESPONSE]),
            )
            def send(
                document: tuple[str, bool], anonymous_caller: bool, use_get: bool, accept: str | None
            ) -> None:
                query, valid = document
                client = anonymous if anonymous_caller else keyed
                headers = {} if accept is None else {"Accept": accept}
                if use_get and len(query) < 8000:
                    response = client.get("/graphql", params={"query": query}, headers=headers)
                else:
                    response = client.post("/graphql", json={"query": query}, headers=headers)
                sent.append(query)
                body = check_answer(response, valid_document=valid)
                if body.get("data"):
                    with_data.append(query)

            send()

    await asyncio.to_thread(run_fuzz)
    assert len(sent) >= 1000
    # The run reached real data, not only refusals.
    assert len(with_data) >= 100, len(with_data)
    response = await api.client.post("/graphql", json={"query": "{ apiVersion }"})
    assert response.status_code == 200


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40), st.just("{ apiVersion }")
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=5), st.dictionaries(st.text(max_size=10), children, max_size=5)
        ),
        max_leaves=20,
    )


def request_objects() -> st.SearchStrategy[dict[str, Any]]:
    """Bodies shaped like GraphQL requests, with wrong types and odd documents in each member."""
    documents = st.one_of(
        st.text(max_size=200),
        st.sampled_from(
            [
                "{ apiVersion }",
                "query Q { apiVersion } query R { viewer { id } }",
                # (A subscription sent as a plain POST is its own test, below.)
                "mutation { apiVersion }",
                "query($g: ID!) { guildRoles(guildId: $g) { id } }",
                "query($r: [ID!]!) { validateRoles(guildId: 1, roleIds: $r) { valid } }",
                "{ __schema { types { name } } }",
                "fragment F on Query { ...F } { ...F }",
                "{ botGuilds { id channels { id parentId } } }",
            ]
        ),
        json_values(),
    )
    return st.fixed_dictionaries(
        {"query": documents},
        optional={
            "variables": st.one_of(
                json_values(),
                st.fixed_dictionaries({}, optional={"g": json_values(), "r": json_values()}),
            ),
            "operationName": st.one_of(st.sampled_from(["Q", "R", ""]), json_values()),
            "extensions": json_values(),
        },
    )


async def test_raw_bodies_never_get_a_500(api: RunningApi) -> None:
    bodies = st.one_of(
        st.binary(max_size=2000),
        json_values().map(lambda value: json.dumps(value).encode()),
        request_objects().map(lambda value: json.dumps(value).encode()),
        request_objects().map(lambda value: json.dumps(value, ensure_ascii=False).encode()),
    )
    content_types = st.one_of(
        st.just(JSON),
        st.just(JSON),
        st.just("application/json; charset=utf-8"),
        st.sampled_from(["text/plain", "application/graphql", "", "application/x-www-form-urlencoded"]),
    )
    sent: list[bytes] = []

    def run_fuzz() -> None:
        with (
            httpx.Client(base_url=api.url, headers=api.auth, timeout=30) as keyed,
            httpx.Client(base_url=api.url, timeout=30) as anonymous,
        ):
            # database=None: nothing written into the checkout.
            @settings(max_examples=300, deadline=None, database=None, suppress_health_check=SLOW_IS_FINE)
            @given(body=bodies, content_type=content_types, anonymous_caller=st.booleans())
            def send(body: bytes, content_type: str, anonymous_caller: bool) -> None:
                client = anonymous if anonymous_caller else keyed
                response = client.post("/graphql", content=body, headers={"Content-Type": content_type})
                sent.append(body)
                check_answer(response)

            # database=None: nothing written into the checkout.
            @settings(max_examples=100, deadline=None, database=None, suppress_health_check=SLOW_IS_FINE)
            @given(
                params=st.dictionaries(
                    st.sampled_from(["query", "variables", "operationName", "extensions", "x"]),
                    st.text(max_size=100),
                )
            )
            def send_get(params: dict[str, str]) -> None:
                response = keyed.get("/graphql", params=params, headers={"Accept": JSON})
                sent.append(repr(params).encode())
                check_answer(response)

            send()
            send_get()

    await asyncio.to_thread(run_fuzz)
    assert len(sent) >= 400
    response = await api.client.post("/graphql", json={"query": "{ apiVersion }"})
    assert response.status_code == 200


async def test_a_subscription_posted_as_a_plain_request_is_refused_as_the_callers_mistake(
    api: RunningApi, fixture: Fixture
) -> None:
    """Found by the raw-body fuzz: a subscription POSTed without asking for an event stream.
    It cannot be answered over plain HTTP; the caller should hear so, not get an internal error."""
    quiet = next(guild.id for guild in fixture.guilds if guild.name == "Quiet Corner")
    for guild in (str(quiet), "1"):
        query = f'subscription {{ guildRolesChanged(guildId: "{guild}") {{ kind guildId }} }}'
        response = await api.client.post("/graphql", json={"query": query})
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
        body = check_answer(response)
        assert "subscription" in body["errors"][0]["message"].lower(), body
