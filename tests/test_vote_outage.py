"""Voting through a Redis outage: the database holds every vote, and subscribers resync after.

Runs against one API worker and against two sharing the port, with a subscriber on every worker
(each worker's poll hub has its own pub/sub connection to lose and get back)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from app.redis_server import RedisServer
from tests.conftest import RunningApi, RunningBot, SandboxHttp, create_key, wait_until
from tests.poll_stack import Polls
from tests.test_access_matrix import log_in
from tests.test_access_revocation import on_every_worker
from tests.test_poll_updates import UPDATES, update
from tests.test_socket_promises import Socket, open_socket  # noqa: F401 (a fixture)
from tests.test_votes import VOTE, Person

pytestmark = [pytest.mark.asyncio, pytest.mark.workers_1_and_2]


async def test_votes_during_a_redis_outage_are_kept_and_subscribers_resync(
    api_factory: Callable[..., Awaitable[RunningApi]],
    bot_factory: Callable[..., Awaitable[RunningBot]],
    http: SandboxHttp,
    open_socket: Callable[..., Awaitable[Socket]],  # noqa: F811
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path / "redis")
    await server.start_async()
    try:
        api = await api_factory(redis_url=server.url)
        key = await create_key(
            api.settings, [g.id for g in api.sandbox.fixture.guilds], ["polls:read", "polls:write"]
        )
        polls = Polls(api, http, key, lambda: bot_factory(server.url, data_dir=api.settings.data_dir))
        await polls.start_bot()
        people = [Person(name, await log_in(api, name), api.url) for name in ("alice", "bob", "carol")]
        poll = await polls.create()
        await polls.until_status(poll["id"], "OPEN")
        sockets = await on_every_worker(api, lambda: open_socket(api, headers=polls.auth))
        for socket in sockets:
            await socket.start("1", UPDATES, {"g": str(polls.guild), "p": poll["id"]})

        async def held() -> bool:
            """Every worker holds the guild's Redis subscription (so each has one to lose)."""
            channel = api.services.poll_hub.channel(polls.guild)
            numbers = await api.services.redis.pubsub_numsub(channel)
            return bool(numbers and numbers[0][1] >= len(api.workers))

        await wait_until(held, within=10)
        await server.stop_async()
        for person in people:
            body = await person.run(VOTE, p=poll["id"], pos=[1])
            assert body["data"]["castVote"]["myBallot"] == [1], body  # the database took it
        await server.start_async()

        for socket in sockets:
            resynced = await update(socket)
            while resynced["kind"] != "RESYNCED":
                resynced = await update(socket)
            assert resynced["poll"]["results"]["voters"] == 3  # nothing lost, read afresh
            assert [o["votes"] for o in resynced["poll"]["results"]["options"]] == [0, 3]
        for person in people:
            await person.client.aclose()
    finally:
        await server.stop_async()
