"""One message to many sockets: FrameSender's threaded writes, over real sockets and through the
running API to a group large enough to use them."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.typing import Subprotocol

from app.graphql import frames
from app.graphql.frames import FrameSender, SocketWriter, frame_header
from app.sandbox.fixture import Fixture
from tests.conftest import RunningApi, RunningBot, SandboxHttp, guild_id, role_id, wait_until

PAYLOAD = b'{"data":{"guildRolesChanged":{"kind":"ROLE_UPDATED"}}}'


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    made: list[tuple[socket.socket, socket.socket]] = []
    yield made
    for ours, theirs in made:
        ours.close()
        theirs.close()


def connected(pairs: list[tuple[socket.socket, socket.socket]], count: int) -> list[int]:
    for _ in range(count):
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        pairs.append((ours, theirs))
    return [ours.fileno() for ours, _ in pairs[-count:]]


def received(theirs: socket.socket) -> bytes:
    theirs.setblocking(False)
    chunks = []
    try:
        while chunk := theirs.recv(1 << 20):
            chunks.append(chunk)
    except BlockingIOError:
        pass
    return b"".join(chunks)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_every_socket_gets_its_own_whole_frame(
    pairs: list[tuple[socket.socket, socket.socket]], threads: int
) -> None:
    fds = connected(pairs, 700)
    heads = [b'{"id":"' + str(uuid.uuid4()).encode() + b'","type":"next","payload":' for _ in fds]
    heads[5] = b'{"id":"7","type":"next","payload":'  # a shorter id: another frame header
    sender = FrameSender(threads, parallel_from=256)
    try:
        assert sender.send(fds, heads, PAYLOAD) == []
    finally:
        sender.close()
    for (_, theirs), head in zip(pairs, heads, strict=True):
        message = head + PAYLOAD + b"}"
        assert received(theirs) == frame_header(len(message)) + message
        json.loads(message)


def test_a_closed_sender_still_writes_everything_from_the_callers_thread(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    fds = connected(pairs, 300)
    heads = [b'{"id":"1","type":"next","payload":'] * len(fds)
    sender = FrameSender(2, parallel_from=256)
    assert sender.send(fds, heads, PAYLOAD) == []  # with its helper
    sender.close()
    assert sender.send(fds, heads, PAYLOAD) == []  # without
    frame = frame_header(len(heads[0]) + len(PAYLOAD) + 1) + heads[0] + PAYLOAD + b"}"
    assert all(received(theirs) == frame * 2 for _, theirs in pairs)


def test_full_and_failed_sockets_are_reported_for_the_caller_to_finish(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    fds = connected(pairs, 300)
    full, gone = pairs[10][0], pairs[20]
    filled = 0
    try:
        while filled < 1 << 30:  # nobody reads: fill the socket's buffers
            filled += full.send(b"x" * 65536)
    except BlockingIOError:
        pass
    else:
        raise AssertionError("the socket never filled up")
    gone[1].close()
    heads = [b'{"id":"1","type":"next","payload":'] * len(fds)
    sender = FrameSender(2, parallel_from=256)
    try:
        unfinished = sender.send(fds, heads, PAYLOAD)
    finally:
        sender.close()
    assert sorted(unfinished) == [(10, 0), (20, -1)]


def _writers(
    monkeypatch: pytest.MonkeyPatch, *, slow_caller: bool = False
) -> list[tuple[str, int, set[int]]]:
    """Records, in order, the CPU each send found its caller on ("send", cpu) and the thread
    and allowed CPUs of each write ("write", thread id, CPUs). A slow caller pauses before each
    of its writes, so that helpers surely get chunks to write."""
    events: list[tuple[str, int, set[int]]] = []
    caller = threading.get_native_id()
    lookup, write = frames._current_cpu, frames._write
    assert lookup is not None

    def recorded_lookup() -> int:
        cpu = lookup()
        events.append(("send", cpu, set()))
        return cpu

    def recorded_write(*args: Any) -> list[tuple[int, int]]:
        events.append(("write", threading.get_native_id(), os.sched_getaffinity(0)))
        if slow_caller and threading.get_native_id() == caller:
            time.sleep(0.001)
        return write(*args)

    monkeypatch.setattr(frames, "_current_cpu", recorded_lookup)
    monkeypatch.setattr(frames, "_write", recorded_write)
    return events


needs_two_cpus = pytest.mark.skipif(
    frames._current_cpu is None or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux's CPU affinity and two CPUs this process may use",
)


@needs_two_cpus
def test_helpers_never_write_on_the_callers_cpu(
    pairs: list[tuple[socket.socket, socket.socket]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Left to the kernel, a helper woken by the caller could share the caller's CPU for a
    whole send, and the two would only take turns."""
    events = _writers(monkeypatch, slow_caller=True)
    allowed = os.sched_getaffinity(0)
    fds = connected(pairs, 600)
    heads = [b'{"id":"1","type":"next","payload":'] * len(fds)
    sender = FrameSender(2, parallel_from=256)
    try:
        for _ in range(5):
            assert sender.send(fds, heads, PAYLOAD) == []
    finally:
        sender.close()
    caller, helper_writes = -1, 0
    for kind, who, cpus in events:
        if kind == "send":
            caller = who
        elif who != threading.get_native_id():
            helper_writes += 1
            assert cpus == allowed - {caller}
    assert helper_writes > 0  # the helper did write, from elsewhere


@needs_two_cpus
def test_a_caller_with_one_cpu_writes_alone(
    pairs: list[tuple[socket.socket, socket.socket]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threads on one CPU can only take turns: the caller's thread writes everything."""
    events = _writers(monkeypatch)
    fds = connected(pairs, 600)
    heads = [b'{"id":"1","type":"next","payload":'] * len(fds)
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    sender = FrameSender(2, parallel_from=256)
    try:
        assert sender.send(fds, heads, PAYLOAD) == []
    finally:
        sender.close()
        os.sched_setaffinity(0, allowed)
    assert {who for kind, who, _ in events if kind == "write"} == {threading.get_native_id()}
    frame = frame_header(len(heads[0]) + len(PAYLOAD) + 1) + heads[0] + PAYLOAD + b"}"
    assert all(received(theirs) == frame for _, theirs in pairs)


async def test_a_large_group_gets_the_change_each_under_its_own_id(
    gateway_bot: RunningBot, api: RunningApi, http: SandboxHttp, fixture: Fixture
) -> None:
    """Past FrameSender's threshold (256), through the real app: every subscriber receives the
    change once, in a frame its client parses, with its own operation id."""
    quiet = guild_id(fixture, "Quiet Corner")
    helpers = role_id(fixture, "Quiet Corner", "Helpers")
    query = "subscription($g: ID!) { guildRolesChanged(guildId: $g) { kind pingableRoles { name } } }"
    url = api.ws_url
    sockets: dict[str, Any] = {}
    try:
        for _ in range(300):
            ws = await websockets.connect(
                url, subprotocols=[Subprotocol("graphql-transport-ws")], additional_headers=api.auth
            )
            operation = str(uuid.uuid4())
            sockets[operation] = ws
            await ws.send(json.dumps({"type": "connection_init"}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            subscribe = {"query": query, "variables": {"g": str(quiet)}}
            await ws.send(json.dumps({"id": operation, "type": "subscribe", "payload": subscribe}))

        async def all_joined() -> bool:
            return api.services.streaming.fanout.subscribers == len(sockets)

        await wait_until(all_joined, within=10)
        await http.control("PATCH", f"/_sandbox/guilds/{quiet}/roles/{helpers}", {"name": "Many Helpers"})

        async def first_change(operation: str, ws: Any) -> None:
            while (message := json.loads(await ws.recv()))["type"] == "ping":
                pass
            assert message["id"] == operation and message["type"] == "next", message
            change = message["payload"]["data"]["guildRolesChanged"]
            assert "Many Helpers" in [role["name"] for role in change["pingableRoles"]]

        async with asyncio.timeout(10):
            await asyncio.gather(*(first_change(operation, ws) for operation, ws in sockets.items()))
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets.values()))


class Protocol(asyncio.Protocol):
    """Stands in for uvicorn's WebSocket protocol: a transport, and whether it sent a close."""

    close_sent = False

    def __init__(self) -> None:
        self.made: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.made.set_result(None)  # under TLS: once the handshake is done

    async def send(self, message: Any) -> None:
        raise AssertionError("direct writers do not go through ASGI")


class Socket:
    def __init__(self, protocol: Protocol) -> None:
        self._send = protocol.send


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_only_plain_sockets_are_written_to_directly_never_tls(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))
    loop = asyncio.get_running_loop()
    accepted: asyncio.Queue[Protocol] = asyncio.Queue()

    def protocol() -> Protocol:
        made = Protocol()
        accepted.put_nowait(made)
        return made

    for tls in (None, server_tls):
        server = await loop.create_server(protocol, "127.0.0.1", 0, ssl=tls)
        port = server.sockets[0].getsockname()[1]
        client, _ = await loop.create_connection(
            asyncio.Protocol,
            "127.0.0.1",
            port,
            ssl=client_tls if tls else None,
            server_hostname="localhost" if tls else None,
        )
        async with asyncio.timeout(5):
            ours = await accepted.get()
            await ours.made
        writer = SocketWriter(Socket(ours))  # type: ignore[arg-type]
        if tls is None:
            assert writer.fd >= 0 and writer.idle()
        else:
            # Only the transport may write: it encrypts. The frame still goes, through it.
            assert writer.fd == -1 and not writer.idle()
            assert writer.write(b'{"type":"next"}')
        client.close()
        server.close()


async def test_two_subscriptions_on_one_slow_socket_never_interleave_their_frames(
    gateway_bot: RunningBot, api: RunningApi, http: SandboxHttp, fixture: Fixture
) -> None:
    """Both subscriptions of one socket are in the same group; with the socket full, frames
    are written in parts, and each must still arrive whole and in order. A reader freeing
    space between two direct writes to one socket would tear a frame, and no test can time
    that: so the direct writes are also watched, and one socket must never get two."""
    sender = api.services.streaming.fanout.sender
    send, repeated, direct = sender.send, [], []

    def watched(fds: Sequence[int], heads: Sequence[bytes], payload: bytes) -> list[tuple[int, int]]:
        repeated.extend(fd for fd, times in Counter(fds).items() if times > 1)
        direct.extend(fds)
        return send(fds, heads, payload)

    sender.send = watched  # type: ignore[method-assign]
    big = guild_id(fixture, "Big Guild")
    query = (
        "subscription($g: ID!) { guildRolesChanged(guildId: $g) { kind pingableRoles { id name color "
        "position permissions mentionable managed hoist unicodeEmoji tags { botId integrationId } } } }"
    )
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", int(api.url.rsplit(":", 1)[1])))
    raw.setblocking(False)
    url = api.ws_url
    async with websockets.connect(
        url, sock=raw, subprotocols=[Subprotocol("graphql-transport-ws")], additional_headers=api.auth,
        max_queue=1, max_size=None,
    ) as ws:  # fmt: skip
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        for operation in ("a", "b"):
            subscribe = {"query": query, "variables": {"g": str(big)}}
            await ws.send(json.dumps({"id": operation, "type": "subscribe", "payload": subscribe}))

        async def both_joined() -> bool:
            return api.services.streaming.fanout.subscribers == 2

        await wait_until(both_joined, within=10)
        fanout = api.services.streaming.fanout
        assert [len(group.members) for group in fanout.groups.values()] == [2], "not one group of two"
        roles = [
            r.id for g in fixture.guilds if g.id == big for r in g.roles if not r.managed and r.id != big
        ]
        changes = 60
        for n in range(changes):
            await http.control(
                "PATCH", f"/_sandbox/guilds/{big}/roles/{roles[n % len(roles)]}", {"name": f"B{n}"}
            )
        # Now read it all: a torn frame would close the connection with a protocol error.
        current: set[str] = set()  # the operations that have seen the last change
        async with asyncio.timeout(20):
            while current != {"a", "b"}:
                message = json.loads(await ws.recv())
                if message["type"] == "next":
                    change = message["payload"]["data"]["guildRolesChanged"]
                    if f"B{changes - 1}" in [role["name"] for role in change["pingableRoles"]]:
                        current.add(message["id"])
    assert direct, "no broadcast went through the direct writes: the check above saw nothing"
    assert repeated == [], "one socket got two direct writes in one broadcast"
