"""What one WebSocket is yet to be sent by the fan-out and the heartbeat, in order.

A broadcast to thousands of sockets must not wait for any one of them: each message is queued
here and sent through Starlette's ``WebSocket.send_text`` (the ASGI send) by a task that runs
while anything is queued, one task per socket, never one per message. The ASGI server's send
waits while the socket's transport is full, so a slow reader's messages pile up here: past
``limit`` characters the socket is *behind*, and the caller stops queueing for it until it
drains (then sends it the latest state once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from starlette.websockets import WebSocket, WebSocketDisconnect

log = logging.getLogger(__name__)

LIMIT = 256 * 1024  # default: characters queued past which the reader is too slow


class Outbox:
    # Thousands of these live at once, one per socket.
    __slots__ = ("closed", "limit", "messages", "queued", "sender", "websocket")

    def __init__(self, websocket: WebSocket, *, limit: int = LIMIT) -> None:
        self.websocket = websocket
        self.limit = limit
        self.messages: deque[str] = deque()
        self.queued = 0  # characters in ``messages``
        self.sender: asyncio.Task[None] | None = None
        self.closed = False

    def write(self, message: str) -> bool:
        """Queue ``message`` (a JSON text message); False when the socket is behind and it was
        dropped. A socket that is gone takes everything: there is nobody left to resync."""
        if self.closed:
            return True
        if self.queued > self.limit:
            return False
        self.messages.append(message)
        self.queued += len(message)
        if self.sender is None:
            self.sender = asyncio.create_task(self.send_queued(), name="websocket-outbox")
        return True

    def drained(self) -> bool:
        """Whether a socket that fell behind has caught up enough to be sent to again."""
        return self.queued <= self.limit // 4

    async def send_queued(self) -> None:
        try:
            while self.messages:
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
