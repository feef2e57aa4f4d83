"""What a caller who got the credentials wrong is told: a sentence to act on, never their secret
back, never a Python repr; and what a key's viewer shows of its guilds."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from app.sandbox.fixture import Fixture
from tests.conftest import RunningApi, create_key, guild_id
from tests.test_access_matrix import log_in, over_websocket, user_caller

VIEWER = "{ viewer { kind guilds { id name } } }"


async def ask(api: RunningApi, authorization: str) -> dict[str, Any]:
    response = await api.client.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": authorization}
    )
    assert response.status_code == 401, response.text
    body: dict[str, Any] = response.json()
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", body
    return body


async def test_a_key_sent_without_its_scheme_is_never_repeated(api: RunningApi, fixture: Fixture) -> None:
    token = await create_key(api.settings, [guild_id(fixture, "Polly Playground")], ["roles:read"])
    secret = token.rsplit("_", 1)[1]
    body = await ask(api, token)  # the key alone: its first word is the whole key
    message = body["errors"][0]["message"]
    assert secret not in str(body) and token[:20] not in str(body), message
    assert "Authorization: Bearer <key>" in message and "no scheme" in message

    # A scheme of another kind is named, so the caller sees what to change...
    assert "not Basic." in (await ask(api, "Basic dXNlcjpwYXNz"))["errors"][0]["message"]
    # ...unless what stands in its place does not look like one.
    weird = f"{token}={secret} x"
    body = await ask(api, weird)
    assert secret not in str(body) and "scheme is not Bearer" in body["errors"][0]["message"]


# On a WebSocket: against one API worker and against two sharing the port.
@pytest.mark.workers_1_and_2
async def test_a_cookie_socket_without_an_origin_is_told_so_in_words(
    api: RunningApi, fixture: Fixture
) -> None:
    target = guild_id(fixture, "Polly Playground")
    async with contextlib.aclosing(await log_in(api, "alice")) as client:
        caller = user_caller(api, "alice", client)
        del caller.ws_headers["Origin"]
        answer = await over_websocket(api, caller, {"g": str(target), "since": "0-0"})
    assert answer.codes == ["UNAUTHENTICATED"], answer.text
    message = answer.body["errors"][0]["message"]
    assert "None" not in message and "named no Origin" in message, message


async def test_a_keys_viewer_names_its_guilds(api: RunningApi, fixture: Fixture) -> None:
    playground, quiet = guild_id(fixture, "Polly Playground"), guild_id(fixture, "Quiet Corner")
    unknown = 1191168914252365999  # a guild the bot is not in
    token = await create_key(api.settings, [playground, quiet, unknown], ["roles:read"])
    response = await api.client.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"}
    )
    viewer = response.json()["data"]["viewer"]
    assert viewer["kind"] == "API_KEY"
    names = {guild["id"]: guild["name"] for guild in viewer["guilds"]}
    assert names == {str(playground): "Polly Playground", str(quiet): "Quiet Corner", str(unknown): None}
