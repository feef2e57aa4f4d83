"""/graphql as the GraphQL-over-HTTP specification says, plus /healthz and GraphiQL."""

from __future__ import annotations

import json

import httpx
import pytest

from app.sandbox.fixture import Fixture
from tests.conftest import RunningApi, guild_id

GOOD = "{ apiVersion }"
INVALID = "{ noSuchField }"
GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


async def test_post_and_get_run_queries(api: RunningApi, fixture: Fixture) -> None:
    quiet = guild_id(fixture, "Quiet Corner")
    query = "query($g: ID!) { pingableRoles(guildId: $g) { name } }"
    post = await api.client.post("/graphql", json={"query": query, "variables": {"g": str(quiet)}})
    get = await api.client.get(
        "/graphql", params={"query": query, "variables": json.dumps({"g": str(quiet)})}
    )
    assert post.status_code == get.status_code == 200
    assert post.json() == get.json()
    assert post.json()["data"]["pingableRoles"] == [{"name": "Helpers"}, {"name": "Artists"}]


async def post_without_accept(api: RunningApi, body: dict[str, object]) -> httpx.Response:
    """POST /graphql with no Accept header at all (httpx sends ``*/*`` unless told not to)."""
    request = api.client.build_request("POST", "/graphql", json=body)
    del request.headers["Accept"]
    return await api.client.send(request)


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        ("*/*", JSON),
        ("application/*", JSON),
        ("text/html,application/xhtml+xml,*/*;q=0.8", JSON),
        (JSON, JSON),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"*/*, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"{JSON};q=0, */*", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}; charset=utf-8, {JSON}; charset=utf-8", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0.5, {JSON}", JSON),
    ],
)
async def test_the_accept_header_picks_the_media_type(api: RunningApi, accept: str, media: str) -> None:
    response = await api.client.post("/graphql", json={"query": GOOD}, headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media
    assert response.json() == {"data": {"apiVersion": "0.1.0"}}


async def test_legacy_clients_get_json_and_200_for_request_errors(api: RunningApi) -> None:
    """No Accept header, or ``*/*``: application/json, with 200 for request errors, as clients
    written before application/graphql-response+json expect."""
    bare = await post_without_accept(api, {"query": GOOD})
    assert "accept" not in bare.request.headers
    assert (bare.status_code, bare.headers["content-type"].split(";")[0]) == (200, JSON)
    assert bare.json() == {"data": {"apiVersion": "0.1.0"}}
    for body in ({"query": INVALID}, {"query": "{"}):
        for response in (
            await post_without_accept(api, body),
            await api.client.post("/graphql", json=body, headers={"Accept": "*/*"}),
        ):
            assert (response.status_code, response.headers["content-type"].split(";")[0]) == (200, JSON)
            assert response.json()["errors"][0]["message"] and "data" not in response.json()
        # Asking for the newer type keeps its status codes.
        explicit = await api.client.post("/graphql", json=body, headers={"Accept": GRAPHQL_RESPONSE})
        assert explicit.status_code == 400
        assert explicit.headers["content-type"].split(";")[0] == GRAPHQL_RESPONSE


async def test_unacceptable_media_types_get_406(api: RunningApi) -> None:
    response = await api.client.post("/graphql", json={"query": GOOD}, headers={"Accept": "text/plain"})
    assert response.status_code == 406


@pytest.mark.parametrize(
    ("media", "status"),
    [(GRAPHQL_RESPONSE, 400), (JSON, 200)],
)
async def test_request_errors_follow_the_media_type(api: RunningApi, media: str, status: int) -> None:
    for body in (
        {"query": INVALID},  # validation
        {"query": "{"},  # parsing
        {"query": "query($n: ID!) { guildRoles(guildId: $n) { id } }", "variables": {"n": [1]}},  # coercion
        {"query": "query A { apiVersion } query B { apiVersion }"},  # which operation?
    ):
        response = await api.client.post("/graphql", json=body, headers={"Accept": media})
        assert response.status_code == status, body
        assert "data" not in response.json()
        assert response.json()["errors"][0]["message"]


async def test_field_errors_are_200_with_data(api: RunningApi) -> None:
    response = await api.client.post(
        "/graphql",
        json={"query": '{ guildRoles(guildId: "5") { id } }'},
        headers={"Accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 200
    assert response.json()["data"] is None
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"NONSENSE", JSON, 400),
        (b'{"query":', JSON, 400),
        (b'{"qeury": "{ apiVersion }"}', JSON, 400),
        (b'{"query": "{ apiVersion }", "variables": [7]}', JSON, 400),
        (b'{"query": "{ apiVersion }", "operationName": 5}', JSON, 400),
        (b"[]", JSON, 400),
        (b"query=%7BapiVersion%7D", "application/x-www-form-urlencoded", 415),
        (b"{ apiVersion }", "text/plain", 415),
    ],
)
async def test_malformed_requests_get_4xx(
    api: RunningApi, content: bytes, content_type: str, status: int
) -> None:
    for accept in (GRAPHQL_RESPONSE, JSON):
        response = await api.client.post(
            "/graphql", content=content, headers={"Content-Type": content_type, "Accept": accept}
        )
        assert response.status_code == status
        assert response.json()["errors"][0]["message"]


async def test_get_cannot_mutate_and_other_methods_are_refused(api: RunningApi) -> None:
    response = await api.client.get("/graphql", params={"query": "mutation { x }"})
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    for method in ("PUT", "DELETE", "HEAD", "PATCH"):
        refused = await api.client.request(method, "/graphql")
        assert refused.status_code == 405 and refused.headers["allow"] == "GET, POST"
    assert (await api.client.get("/graphql", params={"variables": "{"})).status_code == 400


async def test_a_cached_answer_is_no_shortcut_past_the_checks(api: RunningApi) -> None:
    body = json.dumps({"query": GOOD}).encode()
    assert (
        await api.client.post("/graphql", content=body, headers={"Content-Type": JSON})
    ).status_code == 200
    # The same bytes, now cached, still need the right content type.
    response = await api.client.post("/graphql", content=body, headers={"Content-Type": "text/plain"})
    assert response.status_code == 415


async def test_browsers_get_graphiql(api: RunningApi) -> None:
    response = await api.client.get(
        "/graphql", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    )
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_healthz(api: RunningApi) -> None:
    response = await api.client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
