"""Many graphql-transport-ws subscribers in one process, as cheap as Python allows.

Each connection is a bare asyncio Protocol: the HTTP upgrade, masked client frames and a
minimal parser for the server's frames. Run as a child of bench/fanout:

    python -m bench.ws_clients URL COUNT EVENTS SUBSCRIBE_JSON [kernel|eager]

prints "ready" once every connection has its subscription sent, then, after EVENTS messages
reached every connection (or a timeout), one JSON line: arrival times per connection. A
subscription the server turns away for now (SERVICE_UNAVAILABLE, RATE_LIMITED: an overloaded
machine) is sent again a second later, as a client application would.

An arrival is, by default (``kernel``), the time the kernel received the message's last bytes
on the client's socket (SO_TIMESTAMPNS), and the process runs at idle priority (SCHED_IDLE):
like subscribers on other machines, the clients then take no CPU time from the servers, and
their own delays are not counted. Each read asks for exactly the rest of one frame, so a
frame that arrived later (a keep-alive ping) lends the message its timestamp only if the kernel
merged the two before the read, which the prompt reads make rare. ``eager`` takes
the time when Python reads each message, at normal priority, so the clients' scheduling is
part of the figure.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import select
import socket
import struct
import sys
import time
import uuid
from urllib.parse import urlsplit

# The API key the subscribers present (bench/fanout.py passes the Stack's).
AUTHORIZATION = os.environ.get("POLLY_BENCH_AUTHORIZATION", "")
# Refusals that say "try again": the subscription is sent again after RETRY_AFTER seconds.
TRY_AGAIN = (b'"SERVICE_UNAVAILABLE"', b'"RATE_LIMITED"')
RETRY_AFTER = 1.0


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


class Subscriber(asyncio.Protocol):
    def __init__(
        self, path: str, host: str, subscribe: bytes, expected: int, done: asyncio.Future[None]
    ) -> None:
        self.path, self.host, self.subscribe, self.expected, self.done = path, host, subscribe, expected, done
        self.buffer = b""
        self.upgraded = False
        self.retry_at: float | None = None  # when a refused subscription is sent again
        self.arrivals: list[float] = []
        self.transport: asyncio.Transport | None = None
        self.subscribed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: graphql-transport-ws\r\n"
            + (f"Authorization: {AUTHORIZATION}\r\n" if AUTHORIZATION else "")
            + "\r\n"
        )
        transport.write(request.encode())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if self.subscribed.done():
            # Subscribed: from here on only arrivals matter, and the cheapest test keeps the
            # client's own cost out of the measured latency (one message per read: the
            # changes are seconds apart). A ping still gets its pong.
            if data[:1] == b"\x89":
                self.send(data[2 : 2 + (data[1] & 0x7F)], 0xA)
            elif b'"next"' in data:
                self.arrivals.append(now)
                if len(self.arrivals) >= self.expected and not self.done.done():
                    self.done.set_result(None)
            elif b'"error"' in data:
                self.refused(data)
            return
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.upgraded = True
            self.buffer = self.buffer[end + 4 :]
            self.send(b'{"type":"connection_init"}')
        while len(self.buffer) >= 2:
            first, second = self.buffer[0], self.buffer[1]
            size, offset = second & 0x7F, 2
            if size == 126:
                if len(self.buffer) < 4:
                    return
                size, offset = struct.unpack("!H", self.buffer[2:4])[0], 4
            elif size == 127:
                if len(self.buffer) < 10:
                    return
                size, offset = struct.unpack("!Q", self.buffer[2:10])[0], 10
            if len(self.buffer) < offset + size:
                return
            payload = self.buffer[offset : offset + size]
            self.buffer = self.buffer[offset + size :]
            opcode = first & 0x0F
            if opcode == 0x9:  # ping
                self.send(payload, 0xA)
            elif opcode == 0x1:
                self.message(payload, now)

    def message(self, payload: bytes, now: float) -> None:
        if b'"next"' in payload[:64] or b'"type":"next"' in payload:
            self.arrivals.append(now)
            if len(self.arrivals) >= self.expected and not self.done.done():
                self.done.set_result(None)
        elif b"connection_ack" in payload:
            self.send(self.subscribe)
            if not self.subscribed.done():
                self.subscribed.set_result(None)
        elif b'"error"' in payload:
            self.refused(payload)

    def refused(self, message: bytes) -> None:
        if not any(reason in message for reason in TRY_AGAIN):
            return
        self.retry_at = time.monotonic() + RETRY_AFTER
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # reading with timestamps, outside asyncio: read_with_timestamps sends it
        loop.call_later(RETRY_AFTER, self.retry)

    def retry(self) -> None:
        self.retry_at = None
        self.send(self.subscribe)

    def send(self, payload: bytes, opcode: int = 0x1) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(payload, opcode))


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux's value; Python 3.11 lacks the name
POLL_TIMEOUT = 0.25  # seconds; only bounds how long a finished client takes to notice


class TimestampedReader:
    """Reads a subscribed connection's frames with the kernel's receive time of each read."""

    def __init__(self, subscriber: Subscriber) -> None:
        assert subscriber.transport is not None
        subscriber.transport.pause_reading()  # asyncio no longer reads it; this does
        own = subscriber.transport.get_extra_info("socket")
        self.socket = socket.socket(own.family, own.type, fileno=os.dup(own.fileno()))
        self.socket.setblocking(False)
        self.socket.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.subscriber = subscriber
        self.buffer = b""

    def read(self) -> None:
        """Read what has arrived, a frame at a time: each read asks for exactly the rest of one
        frame, so its timestamp is that of the frame's own last bytes, never of a later frame
        (a keep-alive ping, say) that arrived behind it."""
        while True:
            try:
                data, ancillary, _, _ = self.socket.recvmsg(self._needed(), socket.CMSG_SPACE(16))
            except BlockingIOError:
                return
            if not data:
                return  # closed
            self.buffer += data
            if self._needed() > 0:
                continue
            received = time.time()
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = struct.unpack("qq", value[:16])
                    received = seconds + nanoseconds / 1e9
            frame, self.buffer = self.buffer, b""
            opcode, payload = frame[0] & 0x0F, frame[self._offset(frame) :]
            if opcode == 0x9:  # ping
                self.socket.send(client_frame(payload, 0xA))
            elif opcode == 0x1:
                self.subscriber.message(payload, received)

    @staticmethod
    def _offset(frame: bytes) -> int:
        size = frame[1] & 0x7F
        return 4 if size == 126 else 10 if size == 127 else 2

    def _needed(self) -> int:
        """Bytes still missing from the frame in the buffer (its header first)."""
        buffer = self.buffer
        if len(buffer) < 2:
            return 2 - len(buffer)
        offset = self._offset(buffer)
        if len(buffer) < offset:
            return offset - len(buffer)
        size = buffer[1] & 0x7F
        if size == 126:
            size = struct.unpack("!H", buffer[2:4])[0]
        elif size == 127:
            size = struct.unpack("!Q", buffer[2:10])[0]
        return offset + size - len(buffer)


def read_with_timestamps(subscribers: list[Subscriber], deadline: float) -> None:
    readers = {reader.socket.fileno(): reader for reader in map(TimestampedReader, subscribers)}
    with select.epoll() as ready:
        for fd in readers:
            ready.register(fd, select.EPOLLIN)
        while time.monotonic() < deadline and not all(s.done.done() for s in subscribers):
            for fd, _ in ready.poll(POLL_TIMEOUT):
                readers[fd].read()
            now = time.monotonic()
            for subscriber in subscribers:
                if subscriber.retry_at is not None and subscriber.retry_at <= now:
                    subscriber.retry()


async def main(url: str, count: int, expected: int, subscribe: str, mode: str) -> None:
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    operation = json.loads(subscribe)
    subscribers: list[Subscriber] = []
    gate = asyncio.Semaphore(200)

    async def connect() -> None:
        async with gate:
            done = loop.create_future()
            # A fresh id per subscription, as graphql-ws clients make them (UUIDs).
            payload = json.dumps(
                {"id": str(uuid.uuid4()), "type": "subscribe", "payload": operation}
            ).encode()
            _, protocol = await loop.create_connection(
                lambda: Subscriber(parts.path, parts.netloc, payload, expected, done),
                parts.hostname,
                parts.port,
            )
            subscribers.append(protocol)
            await asyncio.wait_for(protocol.subscribed, 30)

    await asyncio.gather(*(connect() for _ in range(count)))
    print("ready", flush=True)
    if mode == "kernel":
        # From here on this process runs only on CPU time nobody else wants, as if on another
        # machine; the kernel's timestamps keep its delays out of the figures.
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        read_with_timestamps(subscribers, time.monotonic() + 120)
    else:
        await asyncio.wait([s.done for s in subscribers], timeout=120)
    print(json.dumps([s.arrivals for s in subscribers]), flush=True)
    # Stay connected until told to go (stdin closes), so the server's figures stay true.
    await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    mode = sys.argv[5] if len(sys.argv) > 5 else "kernel"
    if mode not in ("kernel", "eager"):
        raise SystemExit(f"mode must be kernel or eager, not {mode!r}")
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], mode))
