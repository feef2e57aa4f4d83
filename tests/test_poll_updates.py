"""pollUpdated over a real WebSocket: every change of a guild's polls, votes coalesced with the
last message exact, replay from `since`, and results as each subscriber may see them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import wait_until
from tests.poll_stack import Polls
from tests.test_socket_promises import Socket, open_socket  # noqa: F401 (a fixture)
from tests.test_votes import VOTE, Person, people  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.asyncio, pytest.mark.workers_1_and_2]

UPDATES = """subscription($g: ID!, $p: ID, $since: String) {
  pollUpdated(guildId: $g, pollId: $p, since: $since) {
    kind pollId eventId poll { name status results { voters options { votes } } }
  }
}"""


@pytest_asyncio.fixture
async def subscribe(
    polls: Polls,
    open_socket: Callable[..., Awaitable[Socket]],  # noqa: F811
) -> AsyncIterator[Callable[..., Awaitable[Socket]]]:
    async def start(**variables: Any) -> Socket:
        socket = await open_socket(polls.api, headers=polls.auth)
        await socket.start("1", UPDATES, {"g": str(polls.guild), **variables})
        return socket

    yield start


async def update(socket: Socket) -> dict[str, Any]:
    message = await socket.receive()
    assert message["type"] == "next", message
    found: dict[str, Any] = message["payload"]["data"]["pollUpdated"]
    return found


async def until_kind(socket: Socket, kind: str) -> list[dict[str, Any]]:
    """Every update up to and including the first of ``kind``."""
    seen = [await update(socket)]
    while seen[-1]["kind"] != kind:
        seen.append(await update(socket))
    return seen


async def test_a_polls_life_reaches_subscribers_with_votes_coalesced_and_exact(
    polls: Polls,
    subscribe: Callable[..., Awaitable[Socket]],
    people: dict[str, Person],  # noqa: F811
) -> None:
    socket = await subscribe()
    poll = await polls.create(name="Live")
    created = await update(socket)
    assert created["kind"] == "CREATED" and created["poll"]["name"] == "Live"
    await until_kind(socket, "OPENED")
    votes = 0
    for person in people.values():
        for position in (0, 1, 0, 1, 0):
            await person.run(VOTE, p=poll["id"], pos=[position])
            votes += 1
    seen: list[dict[str, Any]] = []
    while not seen or seen[-1]["poll"]["results"]["options"][0]["votes"] != len(people):
        seen.append(await update(socket))
    assert all(s["kind"] == "VOTES_CHANGED" for s in seen)
    assert len(seen) < votes  # coalesced
    assert seen[-1]["poll"]["results"]["voters"] == len(people)  # the last one exact
    await polls.run("mutation($id: ID!) { closePoll(id: $id) { id } }", {"id": poll["id"]})
    assert (await until_kind(socket, "CLOSED"))[-1]["poll"]["status"] == "CLOSED"
    await polls.run("mutation($id: ID!) { deletePoll(id: $id) }", {"id": poll["id"]})
    deleted = await until_kind(socket, "DELETED")
    assert deleted[-1]["poll"] is None and deleted[-1]["pollId"] == poll["id"]


async def test_since_replays_what_was_missed_and_an_unknown_point_resyncs(
    polls: Polls, subscribe: Callable[..., Awaitable[Socket]]
) -> None:
    first = await subscribe()
    one = await polls.create(name="One")
    mark = (await update(first))["eventId"]
    await polls.create(name="Two")
    await polls.create(name="Three")
    later = await subscribe(since=mark)
    replayed = [await update(later), await update(later)]
    assert [r["poll"]["name"] for r in replayed if r["kind"] == "CREATED"][:2] == ["Two", "Three"]
    only_one = await subscribe(p=one["id"], since="0-0")
    resynced = await update(only_one)
    assert resynced["kind"] == "RESYNCED" and resynced["poll"]["name"] == "One"


async def test_server_sent_events_and_the_legacy_protocol_carry_poll_updates(
    polls: Polls,
    open_socket: Callable[..., Awaitable[Socket]],  # noqa: F811
) -> None:
    legacy = await open_socket(polls.api, "graphql-ws", headers=polls.auth)
    await legacy.start("1", UPDATES, {"g": str(polls.guild)})
    body = {"query": UPDATES, "variables": {"g": str(polls.guild)}}
    headers = {**polls.auth, "Accept": "text/event-stream"}
    async with polls.api.client.stream("POST", "/graphql", json=body, headers=headers) as response:
        assert response.status_code == 200

        async def held() -> bool:  # the stream's Redis subscription is in place
            api = polls.api
            channel = api.services.poll_hub.channel(polls.guild)
            numbers = await api.services.redis.pubsub_numsub(channel)
            listening = sum(services.poll_hub.guilds for services in api.every_services)
            return listening >= 1 and bool(numbers[0][1] >= listening)

        await wait_until(held, within=10)
        await polls.create(name="Both ways")
        created = None
        async with asyncio.timeout(10):
            async for line in response.aiter_lines():
                if line.startswith("data:") and "CREATED" in line:
                    created = json.loads(line[5:])["data"]["pollUpdated"]
                    break
    assert created is not None and created["poll"]["name"] == "Both ways"
    message = await legacy.receive()
    assert message["type"] == "data" and message["payload"]["data"]["pollUpdated"]["kind"] == "CREATED"
