"""Revoking a key, ending a login and losing access to a guild take effect at once on open
WebSockets of every API process: their sockets close with 4403 when told, not at their next
periodic recheck, and no new operation runs on them meanwhile.

Every API here rechecks its sockets only every 60 s (the default key and guild cache TTLs), and
every wait below ends well before that: only the announcement can close the sockets in time.

Each test runs against APIs of one worker and of two sharing a port; with two, the sockets a
test watches are on every worker of the API (each worker hears the announcement on its own).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from app.sandbox.fixture import Fixture
from tests.conftest import (
    RunningApi,
    SandboxHttp,
    create_key,
    guild_id,
    revoke_key,
    role_id,
    until_closed,
    wait_until,
)
from tests.test_access_matrix import log_in
from tests.test_socket_promises import CHANGES, LEGACY, TRANSPORT, Socket, open_socket, user_socket

pytestmark = [pytest.mark.timeout(90), pytest.mark.workers_1_and_2]

# Far under the 60 s periodic recheck: a socket closed within it was closed by being told.
TOLD_WITHIN = 20.0

__all__ = ["open_socket"]  # the fixture, used by the tests below


async def watched(api: RunningApi, count: int) -> None:
    """Wait until ``count`` sockets of ``api`` are watched for access changes (acknowledged),
    over every worker."""

    async def all_watched() -> bool:
        return sum(services.streaming.access_watch.watched for services in api.every_services) >= count

    await wait_until(all_watched, within=TOLD_WITHIN)


# Sockets opened before every worker holds one: the kernel picks each socket's worker, and the
# chance that this many all go to one of two is 2**-39.
MOST_TRIES = 40


async def on_every_worker(api: RunningApi, open_one: Callable[[], Awaitable[Socket]]) -> list[Socket]:
    """Sockets opened on ``api`` by ``open_one`` until every worker serves at least one (one,
    with one worker); all of them, in the order they were opened."""
    opened: list[Socket] = []
    serving: set[int] = set()
    while len(serving) < len(api.workers):
        assert len(opened) < MOST_TRIES, f"{len(opened)} sockets, all on workers {serving}"
        socket = await open_one()
        opened.append(socket)
        serving.add(api.worker_of(socket.ws.local_address))
    return opened


async def subscribed(socket: Socket, guild: int) -> None:
    await socket.start("1", CHANGES, {"g": str(guild), "since": "0-0"})
    assert (await socket.change())["kind"] == "GUILD_RESYNCED"


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
async def test_revoking_a_key_closes_its_sockets_on_every_process_at_once(
    api_factory: Callable[..., Awaitable[RunningApi]],
    open_socket: Callable[..., Awaitable[Socket]],
    redis_url: str,
    fixture: Fixture,
    protocol: str,
) -> None:
    here, there = await api_factory(), await api_factory()
    playground = guild_id(fixture, "Polly Playground")
    token = await create_key(here.settings, [playground], ["roles:read"])
    bearer = {"Authorization": f"Bearer {token}"}
    doomed_here = await on_every_worker(here, lambda: open_socket(here, protocol, bearer))
    doomed_there = await on_every_worker(there, lambda: open_socket(there, protocol, bearer))
    spared = await on_every_worker(there, lambda: open_socket(there, protocol))  # another key's
    doomed = doomed_here + doomed_there
    for socket in (*doomed, *spared):
        await subscribed(socket, playground)
    await watched(here, len(doomed_here))
    await watched(there, len(doomed_there) + len(spared))

    await revoke_key(here.settings, redis_url, token)
    for socket in doomed:
        await until_closed(socket.ws, within=TOLD_WITHIN)
        assert socket.ws.close_code == 4403
        assert socket.ws.close_reason is not None and "revoked" in socket.ws.close_reason
    for socket in spared:
        await socket.answers(playground)


async def test_no_new_operation_runs_once_a_key_is_revoked(
    api_factory: Callable[..., Awaitable[RunningApi]],
    open_socket: Callable[..., Awaitable[Socket]],
    redis_url: str,
    fixture: Fixture,
) -> None:
    """Straight after `polly keys revoke` returns, a subscribe on the key's open socket (on
    any worker) gets no data: it is refused, or the socket is already closed."""
    api = await api_factory()
    playground = guild_id(fixture, "Polly Playground")
    token = await create_key(api.settings, [playground], ["roles:read"])
    bearer = {"Authorization": f"Bearer {token}"}
    sockets = await on_every_worker(api, lambda: open_socket(api, TRANSPORT, bearer))
    for socket in sockets:
        await subscribed(socket, playground)
    await revoke_key(api.settings, redis_url, token)
    # On every socket at once, before any of them is seen closed.
    for socket in sockets:
        with contextlib.suppress(Exception):  # the socket may be closed already: that is the point
            await socket.start("2", CHANGES, {"g": str(playground), "since": "0-0"})
    for socket in sockets:
        received: list[dict[str, Any]] = await until_closed(socket.ws, within=TOLD_WITHIN)
        assert not [m for m in received if m.get("id") == "2" and m["type"] == "next"], received
        assert socket.ws.close_code == 4403


async def test_logging_out_closes_the_sessions_sockets_on_another_process(
    api_factory: Callable[..., Awaitable[RunningApi]],
    open_socket: Callable[..., Awaitable[Socket]],
) -> None:
    here, there = await api_factory(), await api_factory()
    async with contextlib.aclosing(await log_in(here, "alice")) as client:
        sockets = await on_every_worker(there, lambda: user_socket(there, open_socket, client, LEGACY))
        await watched(there, len(sockets))
        logout = await client.post(f"{here.url}/auth/logout", headers={"Origin": here.url})
        assert logout.status_code == 204, logout.text
        for socket in sockets:
            await until_closed(socket.ws, within=TOLD_WITHIN)
    for socket in sockets:
        assert socket.ws.close_code == 4403
        assert socket.ws.close_reason is not None and "login has ended" in socket.ws.close_reason


async def test_a_guild_lost_as_seen_by_one_process_closes_sockets_on_another(
    api_factory: Callable[..., Awaitable[RunningApi]],
    open_socket: Callable[..., Awaitable[Socket]],
    http: SandboxHttp,
    fixture: Fixture,
) -> None:
    """Bob loses his Moderators role; once the cached copy of his guilds is gone (it lives a
    minute; dropped here), a request of his on one process finds his new guild list, and his
    sockets on the other process (on each of its workers) close at once."""
    asking, holding = await api_factory(), await api_factory()
    playground = guild_id(fixture, "Polly Playground")
    bob = next(user.id for user in fixture.users if user.username == "bob")
    voters = role_id(fixture, "Polly Playground", "Poll Voters")
    async with contextlib.aclosing(await log_in(asking, "bob")) as client:
        sockets = await on_every_worker(holding, lambda: user_socket(holding, open_socket, client, TRANSPORT))
        await watched(holding, len(sockets))
        await http.control("PUT", f"/_sandbox/guilds/{playground}/members/{bob}", {"roles": [str(voters)]})
        redis = asking.services.redis
        copies = [key async for key in redis.scan_iter(match=asking.services.role_cache.keys.viewer("*"))]
        assert copies, "no cached copy of bob's guilds"
        await redis.delete(*copies)

        async def closed() -> bool:
            # Bob keeps using the page: one of his requests refreshes his guilds on `asking`.
            await client.post(
                f"{asking.url}/graphql", json={"query": "{ viewer { id } }"}, headers={"Origin": asking.url}
            )
            return all(socket.ws.close_code is not None for socket in sockets)

        await wait_until(closed, within=TOLD_WITHIN)
    for socket in sockets:
        assert socket.ws.close_code == 4403
        assert socket.ws.close_reason is not None and "access changed" in socket.ws.close_reason
