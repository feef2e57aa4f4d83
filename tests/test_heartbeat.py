"""One keep-alive schedule per API process: every socket pinged on time by one task, rechecked
on its own schedule, dropped when it ends; and uvicorn's own per-socket ping left off."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
import websockets
from websockets.typing import Subprotocol

from app.api.app import server_config
from app.graphql.heartbeat import Heartbeat
from tests.conftest import RunningApi, wait_until

pytestmark = pytest.mark.timeout(60)

SOCKETS = 2000


async def until(condition: Callable[[], bool], within: float = 5) -> None:
    async def holds() -> bool:
        return condition()

    await wait_until(holds, within=within, interval=0.02)


def heartbeat_tasks() -> int:
    return sum(task.get_name() == "websocket-heartbeat" for task in asyncio.all_tasks())


async def test_one_task_pings_every_socket_each_interval_and_forgets_ended_ones() -> None:
    heartbeat = Heartbeat(interval=0.2, recheck_interval=60)
    pings: Counter[int] = Counter()
    beats = [heartbeat.join(lambda n=n: pings.update([n])) for n in range(SOCKETS)]
    try:
        assert heartbeat_tasks() == 1
        await until(lambda: len(pings) == SOCKETS and min(pings.values()) >= 2)
        assert heartbeat_tasks() == 1
        # On time: none more than the schedule's slack late, so never twice as many as another.
        assert max(pings.values()) <= min(pings.values()) + 1

        for beat in beats[::2]:
            beat.end()
        ended = dict(pings)
        await until(lambda: min(pings[n] for n in range(1, SOCKETS, 2)) >= ended[1] + 2)
        assert all(pings[n] == ended[n] for n in range(0, SOCKETS, 2))
        assert heartbeat.sockets == SOCKETS // 2
    finally:
        await heartbeat.close()
    assert heartbeat_tasks() == 0


async def test_a_recheck_runs_on_its_own_schedule_and_a_closed_socket_leaves() -> None:
    heartbeat = Heartbeat(interval=0.1, recheck_interval=0.3)
    pings: Counter[str] = Counter()
    rechecks: Counter[str] = Counter()

    async def still_allowed() -> bool:
        rechecks["kept"] += 1
        return False

    async def access_changed() -> bool:
        rechecks["closed"] += 1
        return True  # the socket was closed: it must leave the schedule

    heartbeat.join(lambda: pings.update(["kept"]), still_allowed)
    heartbeat.join(lambda: pings.update(["closed"]), access_changed)
    try:
        await until(lambda: rechecks["kept"] >= 3)
        # A recheck every 0.3 s, a ping every 0.1 s (the shorter of the two sets the rhythm).
        assert pings["kept"] >= 2 * rechecks["kept"]
        assert rechecks["closed"] == 1
        closed_pings = pings["closed"]
        await until(lambda: rechecks["kept"] >= 4)
        assert pings["closed"] <= closed_pings + 1  # at most the one already on its way
        assert heartbeat.sockets == 1
    finally:
        await heartbeat.close()


# Not workers_1_and_2: one schedule (task) per process is the point, and two workers here share a
# process and its tasks; the sockets only say connection_init, they subscribe to nothing.
async def test_many_idle_sockets_get_their_keep_alives_from_one_schedule(
    api_factory: Callable[..., Awaitable[RunningApi]],
) -> None:
    api = await api_factory(keep_alive_interval=0.3)
    sockets = []
    try:
        for _ in range(200):
            ws = await websockets.connect(
                api.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")], additional_headers=api.auth
            )
            await ws.send(json.dumps({"type": "connection_init"}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            sockets.append(ws)
        assert api.services.streaming.heartbeat.sockets == len(sockets)
        assert heartbeat_tasks() == 1  # the API's, however many sockets it holds
        for ws in sockets:
            for _ in range(2):
                assert json.loads(await asyncio.wait_for(ws.recv(), 3)) == {"type": "ping"}
    finally:
        for ws in sockets:
            await ws.close()
    await until(lambda: api.services.streaming.heartbeat.sockets == 0)


def test_uvicorns_own_websocket_ping_is_off(api: RunningApi) -> None:
    config = server_config(api.app, api.settings, host="127.0.0.1", port=0, log_level="warning")
    assert config.ws_ping_interval is None
