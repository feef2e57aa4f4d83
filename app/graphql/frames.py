"""Writing one pre-serialized message to many WebSockets, cheaply.

A subscription message for thousands of sockets is serialized once; each socket then costs a
frame header and a write. Under uvicorn the frame goes straight to the connection's transport
(uvicorn's own sends are whole frames too, so nothing interleaves); under any other server
it goes through the ASGI ``send``. A socket whose unsent data passes a bound is "behind":
nothing more is queued for it until it drains.

For a large group, most of the cost is the kernel's: one ``send()`` per socket. A
:class:`FrameSender` spreads those writes over a few threads (the kernel call runs without the
GIL, so they really run side by side) while the event loop waits for them, so nothing else
touches those sockets meanwhile; whatever a socket did not take at once goes to its transport
afterwards, in order, as any other write. Each send first moves its helpers off the caller's
CPU (they stay there until the next send): the kernel wakes a helper on its waker's CPU, and
while the other CPUs are busy, even with idle-priority work, it may leave both to take turns on
that one for the whole send (seen at 5,000 sockets on two cores: each thread 22 ms on the CPU
in 44 ms). The threads take the sockets in chunks from one shared sequence, so a helper slow to
get its CPU leaves its part to the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

try:
    import ctypes
except ImportError:  # a Python built without libffi: helpers go where the kernel puts them
    ctypes = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

BEHIND = 256 * 1024  # default: bytes waiting to be sent past which the reader is too slow
FALLBACK_QUEUE = 64  # messages, when writing through ASGI
CHUNK = 64  # sockets a thread writes before taking the next chunk


def _cpu_lookup() -> Callable[[], int] | None:
    """The C library's ``sched_getcpu`` (Python 3.11 has no ``os.sched_getcpu``): the CPU the
    calling thread runs on. None where there is none, or no way to keep threads off a CPU."""
    if ctypes is None or not hasattr(os, "sched_setaffinity"):
        return None
    try:
        lookup = ctypes.CDLL(None).sched_getcpu
    except (OSError, AttributeError):
        return None
    lookup.argtypes = []
    lookup.restype = ctypes.c_int
    return lookup


_current_cpu = _cpu_lookup()


def frame_header(size: int) -> bytes:
    """The header of an unmasked, final WebSocket text frame of ``size`` bytes (RFC 6455
    section 5.2), as servers send them."""
    if size < 126:
        return bytes((0x81, size))
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size)
    return struct.pack("!BBQ", 0x81, 127, size)


def text_frame(payload: bytes) -> bytes:
    return frame_header(len(payload)) + payload


class SocketWriter:
    __slots__ = ("_behind", "_drained", "_protocol", "_queue", "_sender", "_transport", "_websocket", "fd")

    def __init__(self, websocket: WebSocket, *, behind: int = BEHIND) -> None:
        self._behind = behind
        self._drained = behind // 4
        protocol: Any = getattr(websocket._send, "__self__", None)
        transport = getattr(protocol, "transport", None)
        # uvicorn's protocols keep their transport and whether they sent a close frame.
        self._protocol: Any = protocol if transport is not None and hasattr(protocol, "close_sent") else None
        self._transport: asyncio.WriteTransport | None = transport if self._protocol is not None else None
        # The raw socket, for FrameSender's writes from other threads; never under TLS, where
        # only the transport may write (it encrypts).
        self.fd = -1
        if self._transport is not None and self._transport.get_extra_info("ssl_object") is None:
            raw = self._transport.get_extra_info("socket")
            self.fd = -1 if raw is None else raw.fileno()
        self._websocket = websocket
        self._queue: asyncio.Queue[bytes] | None = None
        self._sender: asyncio.Task[None] | None = None

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

    def idle(self) -> bool:
        """Whether a frame may go straight to the socket now: a plain socket, open, nothing
        unsent."""
        transport = self._transport
        return (
            transport is not None
            and self.fd >= 0
            and not self._protocol.close_sent
            and not transport.is_closing()
            and transport.get_write_buffer_size() == 0
        )

    def sent_directly(self, frame: bytes, sent: int) -> None:
        """FrameSender wrote ``sent`` bytes of ``frame`` (-1: the socket failed): the rest goes
        through the transport, which also deals with a failed socket as with any write."""
        if sent < len(frame) and self._transport is not None:
            self._transport.write(frame[max(sent, 0) :])

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


class FrameSender:
    """Writes frames to many sockets at once, over ``threads`` threads (the caller's among
    them) when there are at least ``parallel_from`` and the caller may use more than one CPU."""

    def __init__(self, threads: int = 2, *, parallel_from: int = 256) -> None:
        self.threads = max(1, threads)
        self.parallel_from = parallel_from
        self._pool: ThreadPoolExecutor | None = None

    def send(self, fds: Sequence[int], heads: Sequence[bytes], payload: bytes) -> list[tuple[int, int]]:
        """Write the text frame of ``head + payload + b"}"`` to the socket of the same index,
        straight to it. Returns (index, bytes sent) of each frame not sent whole (0 when the
        socket was full, -1 when it failed). Blocks until all are done: the caller's event loop
        waits, so nothing else touches those sockets meanwhile. Only the kernel calls run side
        by side (they release the GIL); Python code in two threads only takes turns, so the
        caller does the rest beforehand, and no frame is assembled in memory (the kernel
        gathers each one from its parts)."""
        headers = {size: frame_header(size + len(payload) + 1) for size in set(map(len, heads))}
        helpers = self.threads - 1 if len(fds) >= self.parallel_from else 0
        cpus = _helper_cpus() if helpers else None
        if cpus is not None and not cpus:
            helpers = 0  # the caller has one CPU: helpers could only take turns with it
        if helpers == 0:
            return _write(fds, heads, payload, headers, 0, len(fds))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(helpers, thread_name_prefix="polly-frames")
        # Chunks from one shared iterator (next() on a range iterator is atomic under the GIL):
        # a helper that is slow to run, pinned to a busy CPU, leaves its work to the caller.
        chunks = iter(range(0, len(fds), CHUNK))
        pending: list[Future[list[tuple[int, int]]]] = []
        try:
            for _ in range(helpers):
                pending.append(self._pool.submit(_write_chunks, chunks, fds, heads, payload, headers, cpus))
        except RuntimeError:  # shut down, or no thread could start: this thread writes the rest
            log.warning("Writing a broadcast from one thread: its helpers are gone.", exc_info=True)
            self.close()
        try:
            unfinished = _write_chunks(chunks, fds, heads, payload, headers)
        finally:
            for future in pending:
                future.cancel()  # a helper that has not started yet never will
            wait(pending)  # no helper may still write once this returns, whatever happened
        for done in pending:
            if not done.cancelled():
                unfinished += done.result()
        return unfinished

    def close(self) -> None:
        """From now on, every send runs in the caller's thread."""
        self.threads = 1
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _helper_cpus() -> set[int] | None:
    """The CPUs the caller may use except the one it runs on; None when that cannot be told."""
    if _current_cpu is None:
        return None
    cpu = _current_cpu()
    try:
        allowed = os.sched_getaffinity(0)
    except OSError:
        return None
    return allowed - {cpu} if cpu in allowed else None


def _write_chunks(
    chunks: Iterator[int],
    fds: Sequence[int],
    heads: Sequence[bytes],
    payload: bytes,
    headers: dict[int, bytes],
    cpus: set[int] | None = None,
) -> list[tuple[int, int]]:
    """Write the chunks of sockets this thread takes from ``chunks``; a helper moves to
    ``cpus`` (off the caller's CPU) first."""
    if cpus:
        try:
            os.sched_setaffinity(0, cpus)  # 0: this thread, on Linux
        except OSError as error:
            log.debug("A frame-writing thread stays where it is: %s", error)
    unfinished: list[tuple[int, int]] = []
    for start in chunks:
        unfinished += _write(fds, heads, payload, headers, start, start + CHUNK)
    return unfinished


def _write(
    fds: Sequence[int],
    heads: Sequence[bytes],
    payload: bytes,
    headers: dict[int, bytes],
    start: int,
    end: int,
) -> list[tuple[int, int]]:
    unfinished = []
    rest = len(payload) + 1
    parts = [b"", b"", payload, b"}"]  # one list for all the writes: nothing allocated per write
    for index in range(start, min(end, len(fds))):
        head = heads[index]
        header = parts[0] = headers[len(head)]
        parts[1] = head
        try:
            sent = os.writev(fds[index], parts)
        except BlockingIOError:
            sent = 0
        except OSError:
            sent = -1
        if sent != len(header) + len(head) + rest:
            unfinished.append((index, sent))
    return unfinished
