"""The fan-out's direct path under a real uvicorn: a broadcast sends at once to every socket that
takes writes, with no task per socket. Should the API's protocol stop telling the application
whether a socket's writing is paused (uvicorn or this API changed), every message would quietly
go the queued way instead: this fails then. (The queued way, for a socket that stops reading,
is tests/test_subscriptions.py's slow subscriber.)"""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY
from starlette.websockets import WebSocket, WebSocketState

from app.graphql.outbox import WRITE_FLOW, Outbox, WriteFlow
from app.sandbox.fixture import Fixture
from tests.conftest import RunningApi, RunningBot, SandboxHttp, guild_id, role_id
from tests.test_subscriptions import Subscriber, held, subscribe

pytestmark = pytest.mark.timeout(60)

SUBSCRIBERS = 40


def sent(path: str) -> float:
    return REGISTRY.get_sample_value("polly_fanout_messages_total", {"path": path}) or 0.0


# Not workers_1_and_2: a process's direct path (its metric, which two workers in one test process
# would share) is the point; tests/test_subscriptions.py runs the broadcast with two workers.
async def test_a_broadcast_sends_at_once_to_every_socket_taking_writes(
    gateway_bot: RunningBot,
    api: RunningApi,
    http: SandboxHttp,
    fixture: Fixture,
) -> None:
    quiet = guild_id(fixture, "Quiet Corner")
    helpers = role_id(fixture, "Quiet Corner", "Helpers")
    subscribers: list[Subscriber] = []
    try:
        for _ in range(SUBSCRIBERS):
            await subscribe(subscribers, api, {"g": str(quiet)})
        await held(api, quiet)
        direct, queued = sent("direct"), sent("queued")
        await http.control("PATCH", f"/_sandbox/guilds/{quiet}/roles/{helpers}", {"name": "Sent at once"})
        for subscriber in subscribers:
            assert "Sent at once" in [role["name"] for role in (await subscriber.next())["pingableRoles"]]
        assert (sent("direct") - direct, sent("queued") - queued) == (SUBSCRIBERS, 0)
    finally:
        for subscriber in subscribers:
            await subscriber.stop()


def test_a_socket_under_another_server_is_always_queued_for() -> None:
    async def receive() -> dict[str, object]:
        return {"type": "websocket.connect"}

    async def send(message: object) -> None:
        return None

    websocket = WebSocket({"type": "websocket", "path": "/graphql", "headers": []}, receive, send)
    assert not Outbox(websocket).ready()


class Transport(asyncio.Transport):
    """A transport that the peer resets after ``lasts`` writes."""

    def __init__(self, lasts: int) -> None:
        super().__init__()
        self.lasts = lasts

    def is_closing(self) -> bool:
        return self.lasts <= 0


async def test_a_queue_stops_at_once_when_its_peer_is_gone() -> None:
    # Messages queued for a socket whose peer resets it midway: what is left is dropped, not
    # written to a dead transport one by one (asyncio logs a warning for each past the fifth).
    transport = Transport(lasts=2)
    written: list[object] = []

    async def receive() -> dict[str, object]:
        return {"type": "websocket.connect"}

    async def send(message: object) -> None:
        written.append(message)
        transport.lasts -= 1

    scope = {
        "type": "websocket",
        "path": "/graphql",
        "headers": [],
        "extensions": {WRITE_FLOW: WriteFlow(transport)},
    }
    websocket = WebSocket(scope, receive, send)
    websocket.application_state = WebSocketState.CONNECTED  # accepted
    outbox = Outbox(websocket)
    for number in range(10):
        assert outbox.write(f'{{"n": {number}}}')
    assert outbox.sender is not None
    await asyncio.wait_for(outbox.sender, timeout=5)
    assert len(written) == 2
    assert outbox.closed and not outbox.messages and outbox.queued == 0
