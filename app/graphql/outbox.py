"""What one WebSocket is yet to be sent by the fan-out and the heartbeat, in order.

Everything goes through Starlette's ``WebSocket.send_text`` (the ASGI send). uvicorn's send
waits only while the connection's transport has paused writing (asyncio's flow control: the
peer is not reading). The API's own protocol in front of uvicorn's sees those pauses and hands
them to the application as the ``polly.write_flow`` extension of the WebSocket's scope
(app/api/connections.py): while a socket is not paused and nothing is queued for it, a
broadcast sends to it at once (``ready``, ``send_now``), no task needed. Otherwise the message
is queued here and sent by a task that runs while anything is queued, one task per socket,
never one per message, so a broadcast never waits for a socket. A slow reader's messages pile
up here: past ``limit`` characters the socket is *behind*, and the caller stops queueing for it
until it drains (then sends it the latest state once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from starlette.websockets import WebSocket, WebSocketDisconnect

log = logging.getLogger(__name__)

LIMIT = 256 * 1024  # default: characters queued past which the reader is too slow
WRITE_FLOW = "polly.write_flow"  # the scope extension holding a connection's WriteFlow


class WriteFlow:
    """Whether a connection's transport takes writes now: not paused (set by the protocol in
    front of it) and not closing (a peer that reset the connection: asyncio counts, and past a
    few logs, every write to it afterwards)."""

    __slots__ = ("paused", "transport")

    def __init__(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.paused = False

    def takes_writes(self) -> bool:
        return not self.paused and not self.transport.is_closing()


class Outbox:
    # Thousands of these live at once, one per socket.
    __slots__ = ("closed", "flow", "limit", "messages", "queued", "sender", "websocket")

    def __init__(self, websocket: WebSocket, *, limit: int = LIMIT) -> None:
        self.websocket = websocket
        self.limit = limit
        self.messages: deque[str] = deque()
        self.queued = 0  # characters in ``messages``
        self.sender: asyncio.Task[None] | None = None
        self.closed = False
        extensions = websocket.scope.get("extensions") or {}
        flow = extensions.get(WRITE_FLOW)
        # Under another server (or without the API's protocol in front): always queued.
        self.flow: WriteFlow | None = flow if isinstance(flow, WriteFlow) else None

    def ready(self) -> bool:
        """Whether a message sent now goes out at once, without waiting: nothing is queued
        before it and the transport takes writes."""
        flow = self.flow
        return flow is not None and self.sender is None and not self.closed and flow.takes_writes()

    async def send_now(self, message: str) -> None:
        """Send ``message`` at once; only when ``ready``."""
        try:
            await self.websocket.send_text(message)
        except (WebSocketDisconnect, RuntimeError, OSError) as error:
            log.debug("A subscriber's socket went away: %r", error)
            self.closed = True

    def write(self, message: str) -> bool:
        """Queue ``message`` (a JSON text message); False when the socket is behind and it was
        dropped. A socket that is gone takes everything: there is nobody left to resync."""
        if self.closed or self._peer_gone():
            return True
        if self.queued > self.limit:
            return False
        self.messages.append(message)
        self.queued += len(message)
        if self.sender is None:
            self.sender = asyncio.create_task(self.send_queued(), name="websocket-outbox")
        return True

    def _peer_gone(self) -> bool:
        """Whether the peer reset the connection; then the outbox closes: asyncio would only
        count each write to the transport (and log one past a few)."""
        if self.flow is not None and self.flow.transport.is_closing():
            self.closed = True
        return self.closed

    def drained(self) -> bool:
        """Whether a socket that fell behind has caught up enough to be sent to again."""
        return self.queued <= self.limit // 4

    async def send_queued(self) -> None:
        try:
            while self.messages:
                if self._peer_gone():
                    self.messages.clear()
                    self.queued = 0
                    return
                message = self.messages[0]
                await self.websocket.send_text(message)
                self.messages.popleft()
                self.queued -= len(message)
        except (WebSocketDisconnect, RuntimeError, OSError) as error:
            # The peer left, or the socket was closed: its handler is cleaning it up.
            log.debug("A subscriber's socket went away: %r", error)
            self.closed = True
            self.messages.clear()
            self.queued = 0
        finally:
            self.sender = None

    async def flushed(self, within: float = 1.0) -> None:
        """Wait (at most ``within`` seconds) until what is queued now has been sent, so that a
        message sent afterwards directly does not overtake it."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while self.sender is not None:
                    await asyncio.shield(self.sender)
