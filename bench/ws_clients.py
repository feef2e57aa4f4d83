"""Many graphql-transport-ws subscribers in one process, as cheap as Python allows.

Each connection is a bare asyncio Protocol: the HTTP upgrade, masked client frames, a minimal
parser for the server's frames, and the arrival time (taken as the bytes arrive) of every
``next`` message. Run as a child of bench/fanout:

    python -m bench.ws_clients URL COUNT EVENTS SUBSCRIBE_JSON

prints "ready" once every connection has its subscription sent, then, after EVENTS messages
reached every connection (or a timeout), one JSON line: arrival times per connection.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import sys
import time
from urllib.parse import urlsplit

# The API key the subscribers present (bench/fanout.py passes the Stack's).
AUTHORIZATION = os.environ.get("POLLY_BENCH_AUTHORIZATION", "")


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

    def send(self, payload: bytes, opcode: int = 0x1) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(payload, opcode))


async def main(url: str, count: int, expected: int, subscribe: str) -> None:
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    payload = json.dumps({"id": "1", "type": "subscribe", "payload": json.loads(subscribe)}).encode()
    subscribers: list[Subscriber] = []
    gate = asyncio.Semaphore(200)

    async def connect() -> None:
        async with gate:
            done = loop.create_future()
            _, protocol = await loop.create_connection(
                lambda: Subscriber(parts.path, parts.netloc, payload, expected, done),
                parts.hostname,
                parts.port,
            )
            subscribers.append(protocol)
            await asyncio.wait_for(protocol.subscribed, 30)

    await asyncio.gather(*(connect() for _ in range(count)))
    print("ready", flush=True)
    await asyncio.wait([s.done for s in subscribers], timeout=120)
    print(json.dumps([s.arrivals for s in subscribers]), flush=True)
    # Stay connected until told to go (stdin closes), so the server's figures stay true.
    await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
