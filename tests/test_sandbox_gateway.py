"""The gateway protocol itself, spoken by a raw WebSocket client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from app.sandbox.builtin import default_fixture
from app.sandbox.server import Sandbox
from tests.conftest import SandboxHttp, guild_id

GUILDS = 1


@pytest_asyncio.fixture
async def fast_sandbox() -> AsyncIterator[Sandbox]:
    running = Sandbox(default_fixture(), heartbeat_interval_ms=200)
    await running.start()
    yield running
    await running.stop()


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await ws.receive(timeout=5)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    payload: dict[str, Any] = json.loads(message.data)
    return payload


async def identify(ws: aiohttp.ClientWebSocketResponse, token: str, **extra: Any) -> None:
    await ws.send_json({"op": 2, "d": {"token": token, "intents": GUILDS, "properties": {}, **extra}})


async def test_hello_identify_ready_and_guild_creates(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(sandbox.gateway_url + "?v=10") as ws:
        hello = await receive(ws)
        assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] > 0
        await ws.send_json({"op": 1, "d": None})
        assert (await receive(ws))["op"] == 11

        await identify(ws, sandbox.fixture.bot.token)
        ready = await receive(ws)
        assert (ready["op"], ready["t"], ready["s"]) == (0, "READY", 1)
        assert ready["d"]["resume_gateway_url"].endswith("/gateway/resume")
        expected = {str(g.id) for g in sandbox.fixture.guilds if g.name != "Elsewhere"}
        assert {g["id"] for g in ready["d"]["guilds"]} == expected
        created = [await receive(ws) for _ in expected]
        assert [c["t"] for c in created] == ["GUILD_CREATE"] * len(expected)
        assert [c["s"] for c in created] == list(range(2, 2 + len(expected)))
        playground = next(c["d"] for c in created if c["d"]["name"] == "Polly Playground")
        # Without GUILD_MEMBERS only the bot's own member comes along.
        assert [m["user"]["id"] for m in playground["members"]] == [str(sandbox.fixture.bot.id)]
        assert any(ch["permission_overwrites"] for ch in playground["channels"])


async def test_shards_get_only_their_guilds(sandbox: Sandbox) -> None:
    seen: set[str] = set()
    async with aiohttp.ClientSession() as session:
        for shard in range(2):
            async with session.ws_connect(sandbox.gateway_url) as ws:
                await receive(ws)
                await identify(ws, sandbox.fixture.bot.token, shard=[shard, 2])
                ready = await receive(ws)
                ids = {g["id"] for g in ready["d"]["guilds"]}
                assert all((int(i) >> 22) % 2 == shard for i in ids)
                seen |= ids
    assert seen == {str(g.id) for g in sandbox.fixture.guilds if g.name != "Elsewhere"}


@pytest.mark.parametrize(
    ("query", "first", "code"),
    [
        ("?v=9", None, 4012),
        ("", {"op": 2, "d": {"token": "wrong", "intents": 1, "properties": {}}}, 4004),
        ("", {"op": 2, "d": {"token": "{token}", "properties": {}}}, 4013),
        ("", {"op": 2, "d": {"token": "{token}", "intents": 1, "shard": [2, 2]}}, 4010),
        ("", {"op": 3, "d": {}}, 4003),
        ("", {"op": 42, "d": None}, 4001),
        ("", "not json", 4002),
    ],
)
async def test_protocol_errors_close_with_discords_codes(
    sandbox: Sandbox, query: str, first: Any, code: int
) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(sandbox.gateway_url + query) as ws:
        if first is not None:
            assert (await receive(ws))["op"] == 10
            text = json.dumps(first).replace("{token}", sandbox.fixture.bot.token)
            await ws.send_str(text if first != "not json" else first)
        message = await ws.receive(timeout=5)
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == code


async def test_a_silent_client_times_out(fast_sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(fast_sandbox.gateway_url) as ws:
        assert (await receive(ws))["op"] == 10
        message = await ws.receive(timeout=5)
        assert message.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 4009


async def test_resume_with_an_unknown_session_is_invalid(sandbox: Sandbox) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(sandbox.gateway_url) as ws:
        await receive(ws)
        await ws.send_json(
            {"op": 6, "d": {"token": sandbox.fixture.bot.token, "session_id": "nope", "seq": 3}}
        )
        assert await receive(ws) == {"op": 9, "d": False, "s": None, "t": None}


async def test_resume_replays_exactly_the_missed_dispatches(sandbox: Sandbox, http: SandboxHttp) -> None:
    token = sandbox.fixture.bot.token
    playground = guild_id(sandbox.fixture, "Polly Playground")
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(sandbox.gateway_url) as ws:
            await receive(ws)
            await identify(ws, token)
            ready = await receive(ws)
            last = ready["s"]
            while last < ready["s"] + len(ready["d"]["guilds"]):
                last = (await receive(ws))["s"]
            await http.control("POST", "/_sandbox/gateway/reconnect")
            assert (await receive(ws))["op"] == 7
        names = ["First", "Second"]
        for name in names:
            response, _ = await http.call("POST", f"/guilds/{playground}/roles", json={"name": name})
            assert response.status == 200
        resume_url = ready["d"]["resume_gateway_url"]
        async with session.ws_connect(resume_url) as ws:
            await receive(ws)
            await ws.send_json(
                {"op": 6, "d": {"token": token, "session_id": ready["d"]["session_id"], "seq": last}}
            )
            replayed = [await receive(ws) for _ in names]
            assert [(p["t"], p["d"]["role"]["name"], p["s"]) for p in replayed] == [
                ("GUILD_ROLE_CREATE", "First", last + 1),
                ("GUILD_ROLE_CREATE", "Second", last + 2),
            ]
            resumed = await receive(ws)
            assert (resumed["t"], resumed["s"]) == ("RESUMED", last + 3)


async def test_after_invalid_session_the_same_socket_may_identify(
    sandbox: Sandbox, http: SandboxHttp
) -> None:
    token = sandbox.fixture.bot.token
    async with aiohttp.ClientSession() as session, session.ws_connect(sandbox.gateway_url) as ws:
        await receive(ws)
        await identify(ws, token)
        first = await receive(ws)
        for _ in first["d"]["guilds"]:
            await receive(ws)
        await http.control("POST", "/_sandbox/gateway/invalidate-session")
        assert (await receive(ws))["op"] == 9
        await identify(ws, token)
        again = await receive(ws)
        assert again["t"] == "READY" and again["d"]["session_id"] != first["d"]["session_id"]


async def test_a_timed_out_session_cannot_be_resumed(fast_sandbox: Sandbox) -> None:
    token = fast_sandbox.fixture.bot.token
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(fast_sandbox.gateway_url) as ws:
            await receive(ws)
            await identify(ws, token)
            ready = await receive(ws)
            message = await ws.receive(timeout=5)  # no heartbeats: the sandbox gives up
            while message.type == aiohttp.WSMsgType.TEXT:
                message = await ws.receive(timeout=5)
            assert ws.close_code == 4009
        async with session.ws_connect(fast_sandbox.gateway_url) as ws:
            await receive(ws)
            await ws.send_json(
                {"op": 6, "d": {"token": token, "session_id": ready["d"]["session_id"], "seq": 1}}
            )
            assert (await receive(ws))["op"] == 9
