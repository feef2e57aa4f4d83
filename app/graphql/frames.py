"""Writing one pre-serialized message to many WebSockets, cheaply.

A subscription message for thousands of sockets is serialized once; each socket then costs a
frame header and a write. Under uvicorn the frame goes straight to the connection's transport
(uvicorn's own sends are whole frames too, so nothing interleaves); under any other server
it goes through the ASGI ``send``. A socket whose unsent data passes a bound is "behind":
nothing more is queued for it until it drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

log = logging.getLogger(__name__)

BEHIND = 256 * 1024  # default: bytes waiting to be sent past which the reader is too slow
FALLBACK_QUEUE = 64  # messages, when writing through ASGI


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final WebSocket text frame (RFC 6455 section 5.2), as servers send them."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


class SocketWriter:
    def __init__(self, websocket: WebSocket, *, behind: int = BEHIND) -> None:
        self._behind = behind
        self._drained = behind // 4
        protocol: Any = getattr(websocket._send, "__self__", None)
        transport = getattr(protocol, "transport", None)
        # uvicorn's protocols keep their transport and whether they sent a close frame.
        self._protocol = protocol if transport is not None and hasattr(protocol, "close_sent") else None
        self._transport: asyncio.WriteTransport | None = transport if self._protocol is not None else None
        self._websocket = websocket
        self._queue: asyncio.Queue[bytes] | None = None
        self._sender: asyncio.Task[None] | None = None

    @property
    def direct(self) -> bool:
        return self._transport is not None

    def write(self, message: bytes) -> bool:
        """Send ``message`` (a JSON text message); False when the socket is behind and the
        message was dropped."""
        if self._transport is not None:
            if getattr(self._protocol, "close_sent", True) or self._transport.is_closing():
                return True  # the connection is closing: nothing to deliver any more
            if self._transport.get_write_buffer_size() > self._behind:
                return False
            self._transport.write(text_frame(message))
            return True
        if self._queue is None:
            self._queue = asyncio.Queue(maxsize=FALLBACK_QUEUE)
            self._sender = asyncio.create_task(self._send_queued())
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            return False
        return True

    def drained(self) -> bool:
        if self._transport is not None:
            return self._transport.get_write_buffer_size() <= self._drained
        return self._queue is None or self._queue.empty()

    async def _send_queued(self) -> None:
        queue = self._queue
        if queue is None:
            return
        try:
            while True:
                message = await queue.get()
                await self._websocket.send_text(message.decode())
                queue.task_done()
        except (WebSocketDisconnect, RuntimeError, OSError) as error:
            # The socket is gone; its operation is being cleaned up.
            log.debug("A subscriber's socket went away: %s", error)

    async def close(self, within: float = 1.0) -> None:
        """Stop writing, after sending what is queued (so nothing overtakes it)."""
        if self._sender is None or self._queue is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._queue.join()
        self._sender.cancel()
