"""What a connection may cost before it is a request, and whose word its address is.

uvicorn (over httptools, what ``auto`` picks) reads a request head and body for as long as a
client takes to send them. Its only timer, ``timeout_keep_alive``, runs between requests and
the next request's first byte cancels it, so a client sending a byte every few seconds holds its
connection for ever, and a few thousand such clients hold the server. It also has no bound on
the header section (``h11_max_incomplete_event_size`` is h11's), and a request target over
65,535 bytes (the most httptools' URL parser takes) gets a plain-text 400 before the
application sees it. uvicorn's ``proxy_headers`` is on by default and believes
X-Forwarded-For from 127.0.0.1 (or whatever ``FORWARDED_ALLOW_IPS`` says): any caller through
a same-host proxy or sidecar names its own address, and with it its rate-limit bucket.

What this module adds, through uvicorn's public extension points only (``Config(http=<a
protocol class>)``, an ASGI application, and uvicorn's own ``ProxyHeadersMiddleware``):

``GuardedConnection``, the HTTP protocol uvicorn runs for each connection: an asyncio Protocol
of our own that fronts uvicorn's ``HttpToolsProtocol`` (composition: uvicorn's class is
instantiated and called through the asyncio Protocol interface only, never subclassed or
looked into). It reads the same bytes with a second httptools parser of its own, set up as
uvicorn sets up its own, which tells it where each request's head begins and ends, and so:

- the head deadline (``POLLY_HEADER_TIMEOUT``), from the connection's start or the first byte
  of the next head: past it, 408 with a JSON error and the connection closes (only closes when
  a response to an earlier request on it is still owed: an answer cannot go in the middle);
- the request target (65,535 bytes: 414) and header section (64 KiB: 431) bounds, answered
  before uvicorn sees the bytes;
- connections per address (``POLLY_MAX_CONNECTIONS_PER_ADDRESS``): one over gets a 429 and
  is closed as it is accepted; the proxies of ``POLLY_TRUSTED_PROXIES`` carry many clients and
  are not limited.

A WebSocket upgrade stays uvicorn's: it hands the transport to its WebSocket protocol with
``transport.set_protocol()``. Right after each delivery the connection checks
``transport.get_protocol()`` and, if it changed, puts itself back in front of the new protocol
(asyncio's public transport API), so that the connection's end is still counted here, and the
transport's flow control (``pause_writing``, ``resume_writing``) passes through here to uvicorn's
protocol: whether writing is paused is handed to the application as the WebSocket scope's
``polly.write_flow`` extension, for the fan-out to tell which sockets take a message at once
(app/graphql/outbox.py).

``ConnectionGuard`` is the per-server half: the per-address counts, the class given to
uvicorn, and the ASGI middleware in front of the application, which

- bounds the body (``POLLY_BODY_TIMEOUT`` from the end of the head): ``receive()`` raises
  :class:`RequestBodyLate` once it passes while the body is still arriving, and the
  middleware answers 408 itself (the application has not started answering; if it has, the
  connection is closed). A body left unread after the answer may not drip past the deadline
  either: the connection closes then;
- believes X-Forwarded-For and X-Forwarded-Proto only from ``POLLY_TRUSTED_PROXIES`` (uvicorn's
  ``ProxyHeadersMiddleware``, applied here after the real peer has been read; uvicorn's own
  ``proxy_headers`` is turned off, so ``FORWARDED_ALLOW_IPS`` means nothing).

The middleware finds a request's connection by the peer and local addresses of its scope
(the ASGI ``client`` and ``server``, which uvicorn fills from the socket).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import secrets
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import httptools
import orjson
import uvicorn
from prometheus_client import Gauge
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from app.graphql.errors import request_error
from app.graphql.outbox import WRITE_FLOW, WriteFlow
from app.settings import Settings
from app.telemetry.metrics import OPEN_CONNECTIONS

log = logging.getLogger(__name__)

# httptools refuses longer URLs (it keeps their offsets in 16 bits); uvicorn then answers 400.
MAX_REQUEST_TARGET = 65_535
MAX_HEADER_BYTES = 64 * 1024
# The parser is fed this much at a time at most (asyncio reads up to 256 KiB at once), less
# as a head nears its bound, so that a head is measured to the byte whatever the reads.
SLICE = 16 * 1024

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Where a connection's own parser is.
IDLE, HEAD, BODY = 0, 1, 2

REASONS = {
    408: "Request Timeout",
    414: "URI Too Long",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
}


@dataclass(frozen=True, slots=True)
class TransportLimits:
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections_per_address: int = 64
    trusted_proxies: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> TransportLimits:
        return cls(
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            max_connections_per_address=settings.max_connections_per_address,
            trusted_proxies=tuple(settings.trusted_proxies),
        )


class RequestBodyLate(BaseException):
    """Raised by ``receive()`` when the body is still arriving at its deadline.

    A BaseException, as asyncio's CancelledError is, so that the application's generic
    ``except Exception`` (which turns errors into 500s and logs them as the server's) lets it
    through to the middleware that answers it."""


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _error_head(
    status: int, body: bytes, started: float, now: float, extra: Sequence[tuple[str, str]]
) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {REASONS[status]}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        f"x-request-id: {secrets.token_hex(8)}",
        f"server-timing: app;dur={(now - started) * 1000:.2f}",
        *(f"{name}: {value}" for name, value in extra),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _client_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # an IPv4 client of a dual-stack socket
    return address


def _counted_as(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Hashable:
    """What connections are counted under: an IPv4 address, or an IPv6 /64 (one subscriber's
    network: counting its 2^64 addresses apart would count nothing)."""
    if isinstance(address, ipaddress.IPv6Address):
        return ipaddress.IPv6Network((address, 64), strict=False)
    return address


def proxy_trust_list(networks: Iterable[Network]) -> list[str]:
    """``POLLY_TRUSTED_PROXIES`` as uvicorn's ProxyHeadersMiddleware takes it; IPv4 networks also
    as the IPv4-mapped IPv6 addresses a dual-stack socket reports them as."""
    trusted = []
    for network in networks:
        trusted.append(str(network))
        if isinstance(network, ipaddress.IPv4Network):
            trusted.append(f"::ffff:{network.network_address}/{96 + network.prefixlen}")
    return trusted


class ConnectionGuard:
    """One per server: the HTTP protocol class for uvicorn (``protocol``), the counts of open
    connections per address, and the ASGI middleware in front of ``app``."""

    def __init__(self, app: ASGIApp, limits: TransportLimits) -> None:
        self.limits = limits
        self.app: ASGIApp = app
        if limits.trusted_proxies:
            proxied = ProxyHeadersMiddleware(
                cast(Any, app), trusted_hosts=proxy_trust_list(limits.trusted_proxies)
            )
            self.app = cast(ASGIApp, proxied)
        self.open: dict[Hashable, int] = {}
        self.by_peer: dict[tuple[Any, Any], GuardedConnection] = {}

    @functools.cached_property
    def protocol(self) -> type[asyncio.Protocol]:
        """The class to give uvicorn as ``Config(http=...)``; uvicorn makes one per connection."""
        return type("GuardedHttpProtocol", (GuardedConnection,), {"guard": self, "__slots__": ()})

    # -- connections per address ----------------------------------------------------------------

    def admit(self, host: str) -> tuple[bool, Hashable | None]:
        """Whether a connection from ``host`` may open, and what it is counted under (None:
        not counted: a trusted proxy, or not an IP address)."""
        address = _client_address(host)
        if address is None or any(address in network for network in self.limits.trusted_proxies):
            return True, None
        key = _counted_as(address)
        count = self.open.get(key, 0)
        if count >= self.limits.max_connections_per_address:
            return False, key
        self.open[key] = count + 1
        return True, key

    def release(self, key: Hashable) -> None:
        count = self.open.get(key, 0) - 1
        if count > 0:
            self.open[key] = count
        else:
            self.open.pop(key, None)

    # -- the ASGI middleware ----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            connection = self.by_peer.get((scope.get("server"), scope.get("client")))
            if scope["type"] == "websocket" and connection is not None and connection.flow is not None:
                extensions = {**(scope.get("extensions") or {}), WRITE_FLOW: connection.flow}
                scope = {**scope, "extensions": extensions}
            await self.app(scope, receive, send)
            return
        connection = self.by_peer.get((scope.get("server"), scope.get("client")))
        if connection is None:
            # Not one of ours (the application under another server): bounded all the same.
            loop = asyncio.get_running_loop()
            await self._bounded(scope, receive, send, loop.time() + self.limits.body_timeout, None)
            return
        index = connection.requests_started
        connection.requests_started += 1
        try:
            if connection.bodies_complete > index:
                # The whole request is here already (nearly always): nothing to bound.
                await self.app(scope, receive, send)
            else:
                await self._bounded(scope, receive, send, connection.body_deadline, connection)
        finally:
            connection.request_finished(index)

    async def _bounded(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        deadline: float,
        connection: GuardedConnection | None,
    ) -> None:
        """Run the application with ``receive()`` bounded by ``deadline`` until the body is in."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        received = False
        answering = False

        async def bounded_receive() -> Message:
            nonlocal received
            if received:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestBodyLate from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                received = True
            return message

        async def watched_send(message: Message) -> None:
            nonlocal answering
            if message["type"] == "http.response.start":
                answering = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, watched_send)
        except BaseException as error:
            if not _is_late(error):
                raise
            log.debug("A request body from %s did not arrive in time.", scope.get("client"))
            if answering:
                # Too late for an answer of our own: only closing ends this response.
                if connection is not None:
                    connection.close()
                return
            await self._request_timeout(send, started, loop.time())

    async def _request_timeout(self, send: Send, started: float, now: float) -> None:
        message = (
            f"The request body did not arrive within {_seconds(self.limits.body_timeout)} of its headers;"
            " send the whole request without pausing."
        )
        body = orjson.dumps(request_error(message, "REQUEST_TIMEOUT"))
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            (b"x-request-id", secrets.token_hex(8).encode()),
            (b"server-timing", f"app;dur={(now - started) * 1000:.2f}".encode()),
        ]
        await send({"type": "http.response.start", "status": 408, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _is_late(error: BaseException) -> bool:
    if isinstance(error, RequestBodyLate):
        return True
    return isinstance(error, BaseExceptionGroup) and error.subgroup(RequestBodyLate) is not None


class GuardedConnection(asyncio.Protocol):
    """One connection: uvicorn's HTTP protocol behind a framing parser and the deadlines.

    uvicorn makes it as it makes its own protocols, with keyword arguments; ``_loop`` is the
    name uvicorn passes the loop under (always None from its server), accepted and not
    passed on."""

    __slots__ = (
        "app_state", "bodies_complete", "body_deadline", "config", "counted_as", "drip_timer", "flow",
        "head_bytes", "head_timer", "heads_complete", "inner", "limits", "loop", "open_gauge", "parser",
        "peer", "phase", "refusal", "requests_finished", "requests_started", "server_state",
        "transport", "url_bytes", "waiting_since",
    )  # fmt: skip
    guard: ClassVar[ConnectionGuard]

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.config = config
        self.server_state = server_state
        self.app_state = app_state
        self.loop = asyncio.get_running_loop()
        self.limits = self.guard.limits
        self.transport: asyncio.Transport | None = None
        self.inner: asyncio.Protocol | None = None  # uvicorn's protocol, HTTP then maybe WebSocket
        self.parser: httptools.HttpRequestParser | None = None  # None: not framing (WebSocket, or bad bytes)
        self.counted_as: Hashable | None = None
        self.peer: tuple[Any, Any] | None = None
        # The framing parser's view.
        self.phase = IDLE
        self.url_bytes = 0
        self.head_bytes = 0
        self.refusal: int | None = None
        self.waiting_since: float | None = None  # when the connection began waiting for the next head
        self.head_timer: asyncio.TimerHandle | None = None
        self.drip_timer: asyncio.TimerHandle | None = None
        self.body_deadline = 0.0
        self.heads_complete = 0  # requests whose head has arrived (uvicorn hands each to the app)
        self.bodies_complete = 0  # ... and whose body has too
        # The middleware's view.
        self.requests_started = 0
        self.requests_finished = 0
        self.open_gauge: Gauge | None = None  # this connection, while counted as open
        self.flow: WriteFlow | None = None  # whether the transport takes writes (once there is one)

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.flow = WriteFlow(transport)
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        if isinstance(peer, tuple):
            admitted, counted_as = self.guard.admit(str(peer[0]))
            if not admitted:
                self._refuse_connection(str(peer[0]))
                return
            self.counted_as = counted_as
            if isinstance(local, tuple):
                # As uvicorn puts them in the scope, so that the middleware finds us.
                self.peer = ((str(local[0]), int(local[1])), (str(peer[0]), int(peer[1])))
                self.guard.by_peer[self.peer] = self
        self.open_gauge = OPEN_CONNECTIONS.labels("tcp")
        self.open_gauge.inc()
        self.parser = httptools.HttpRequestParser(self)
        # As uvicorn sets up its own parser (uvicorn[standard] needs httptools >= 0.8, which has
        # this): both parsers must frame the same bytes alike.
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.inner = HttpToolsProtocol(
            config=self.config, server_state=self.server_state, app_state=self.app_state
        )
        self.inner.connection_made(self.transport)
        self.waiting_since = self.loop.time()
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        inner, transport = self.inner, self.transport
        if inner is None or transport is None:
            return  # refused: nothing is read
        if self.parser is None:
            inner.data_received(data)
            return
        if self.phase == IDLE and self.waiting_since is None:
            self.waiting_since = self.loop.time()  # even blank lines start the next head's clock
        refusal, upgrade_at = self._frame(data)
        if refusal is not None:
            self._refuse_head(refusal)
            return
        inner.data_received(data)
        if upgrade_at is not None:
            self._after_upgrade(data, upgrade_at)
        if self.waiting_since is not None and self.head_timer is None and self.parser is not None:
            self._arm_head_timer()

    def eof_received(self) -> bool | None:
        return None if self.inner is None else self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        if self.open_gauge is not None:
            self.open_gauge.dec()
            self.open_gauge = None
        if self.peer is not None and self.guard.by_peer.get(self.peer) is self:
            del self.guard.by_peer[self.peer]
        if self.counted_as is not None:
            self.guard.release(self.counted_as)
            self.counted_as = None
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.flow is not None:
            self.flow.paused = True
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.flow is not None:
            self.flow.paused = False
        if self.inner is not None:
            self.inner.resume_writing()

    # -- framing (httptools calls these; no on_header or on_body: nothing is kept) ----------------

    def on_message_begin(self) -> None:
        self.phase = HEAD
        self.url_bytes = self.head_bytes = 0
        if self.waiting_since is None:
            self.waiting_since = self.loop.time()

    def on_url(self, url: bytes) -> None:
        self.url_bytes += len(url)
        if self.url_bytes > MAX_REQUEST_TARGET:
            self.refusal = 414

    def on_headers_complete(self) -> None:
        if self.refusal is not None:
            return  # refused, never handed over: no answer is owed for it
        self.phase = BODY
        self.heads_complete += 1
        self.waiting_since = None
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None
        self.body_deadline = self.loop.time() + self.limits.body_timeout

    def on_message_complete(self) -> None:
        self.phase = IDLE
        self.bodies_complete += 1
        if self.drip_timer is not None:
            self.drip_timer.cancel()
            self.drip_timer = None

    def _frame(self, data: bytes) -> tuple[int | None, int | None]:
        """Feed the framing parser: a status to refuse the head with, and where an upgrade's
        bytes begin (the parser stops there until uvicorn has decided)."""
        parser = self.parser
        assert parser is not None
        view = memoryview(data)
        offset = 0
        while offset < len(view):
            size = SLICE
            if self.phase == HEAD:
                # No more than the header section may still take, and one byte: a head still
                # incomplete after that is over the bound, whatever the size of the read.
                size = min(SLICE, MAX_HEADER_BYTES - (self.head_bytes - self.url_bytes) + 1)
            piece = view[offset : offset + size]
            try:
                parser.feed_data(piece)
            except httptools.HttpParserUpgrade as upgrade:
                return None, offset + int(upgrade.args[0])
            except httptools.HttpParserError:
                # Malformed: uvicorn's parser fails on the same bytes, answers 400 and closes.
                self.parser = None
                self._cancel_timers()
                return None, None
            offset += len(piece)
            if self.refusal is not None:
                return self.refusal, None
            if self.phase == HEAD:
                self.head_bytes += len(piece)
                if self.head_bytes - self.url_bytes > MAX_HEADER_BYTES:
                    return 431, None
        return None, None

    def _after_upgrade(self, data: bytes, upgrade_at: int) -> None:
        transport = self.transport
        assert transport is not None
        switched = transport.get_protocol()
        if switched is not self:
            # uvicorn gave the connection to its WebSocket protocol: stay in front of it.
            self.inner = cast(asyncio.Protocol, switched)
            self.parser = None
            self._cancel_timers()
            transport.set_protocol(self)
            return
        # An upgrade uvicorn does not speak: it answers the request as HTTP, and so do we.
        refusal, _ = self._frame(data[upgrade_at:]) if upgrade_at < len(data) else (None, None)
        if refusal is not None:
            self.close()

    # -- deadlines -------------------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        assert self.waiting_since is not None
        self.head_timer = self.loop.call_at(self.waiting_since + self.limits.header_timeout, self._head_late)

    def _head_late(self) -> None:
        self.head_timer = None
        if self.transport is None or self.transport.is_closing() or self.parser is None:
            return
        log.debug("A request head from %s did not arrive in time.", self.peer)
        message = (
            f"The request's headers did not arrive within {_seconds(self.limits.header_timeout)};"
            " send each request whole, without pausing."
        )
        self._answer_and_close(408, message, "REQUEST_TIMEOUT")

    def request_finished(self, index: int) -> None:
        """The application is done with request ``index``; if its body is still arriving (the
        answer did not need it), it may take until the body's deadline and no longer."""
        self.requests_finished += 1
        if self.bodies_complete > index or self.transport is None or self.transport.is_closing():
            return
        late = self.body_deadline - self.loop.time()
        if late <= 0:
            self.close()
        elif self.drip_timer is None:
            self.drip_timer = self.loop.call_later(late, self.close)

    def _cancel_timers(self) -> None:
        for timer in (self.head_timer, self.drip_timer):
            if timer is not None:
                timer.cancel()
        self.head_timer = self.drip_timer = None

    # -- refusals ----------------------------------------------------------------------------------

    def _refuse_connection(self, host: str) -> None:
        limit = self.limits.max_connections_per_address
        log.debug("Refused a connection from %s: it has %d open already.", host, limit)
        message = (
            f"This address has {limit} connections open to this server, the most one address may;"
            " reuse them (keep-alive) or close one, then retry."
        )
        self._answer_and_close(429, message, "TOO_MANY_CONNECTIONS", [("retry-after", "1")])

    def _refuse_head(self, status: int) -> None:
        if status == 414:
            message = (
                f"The request target (path and query string) is over {MAX_REQUEST_TARGET} bytes, the most"
                " this server reads; send GraphQL queries with POST."
            )
        else:
            message = (
                f"The request's header fields are over {MAX_HEADER_BYTES} bytes, the most this server reads."
            )
        self._answer_and_close(status, message, "BAD_REQUEST")

    def _answer_and_close(
        self, status: int, message: str, code: str, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Answer with a JSON error, as every refusal of this API, unless a response to an
        earlier request on this connection is still owed (a pipelining client): an answer cannot
        go in the middle of another, so then the connection only closes."""
        transport = self.transport
        if transport is None:
            return
        self._cancel_timers()
        self.parser = None
        if self.heads_complete <= self.requests_finished:
            now = self.loop.time()
            body = orjson.dumps(request_error(message, code))
            transport.write(_error_head(status, body, self.waiting_since or now, now, headers) + body)
        transport.close()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._cancel_timers()
            self.transport.close()
