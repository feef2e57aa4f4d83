"""What a connection may cost before it is a request: proxy headers only from listed proxies,
request heads and bodies that must arrive in time, a bound on connections per address, and the
414 the README promises for an overlong GET.

Everything here speaks raw HTTP/1.1 over loopback sockets to a real uvicorn, as a slow or
hostile client would: an HTTP client library would not trickle, stall or overrun on purpose.
Deadlines are set short (a second) so that the tests wait on the server's answer, never on a
clock; WITHIN only bounds how long a broken server may keep a test waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from app.sandbox.server import Sandbox
from tests.conftest import RunningApi, polly_environment, wait_until
from tests.processes import announced

# The one test on WebSockets runs against one API worker and against two sharing the port
# (marked workers_1_and_2); the others speak plain HTTP.
pytestmark = pytest.mark.timeout(90)

ApiFactory = Callable[..., Awaitable[RunningApi]]

WITHIN = 30.0  # how long a broken server may keep a test waiting; never a measured bound
GOOD = b'{"query": "{ apiVersion }"}'
ANSWERED = {"data": {"apiVersion": "0.1.0"}}
SLOW = 0.01  # requests a second: a rate-limit bucket that, once spent, stays spent for the test


# -- raw HTTP/1.1 ------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def error(self) -> dict[str, Any]:
        """The one error of a JSON error body, as every refusal of this API has it."""
        assert self.headers.get("content-type", "").startswith("application/json"), self.headers
        (error,) = self.json()["errors"]
        assert error["message"][0].isupper() and error["message"].endswith("."), error
        return dict(error)


class Raw:
    """One TCP connection to the API, from ``address``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, api: RunningApi, address: str = "127.0.0.1") -> Raw:
        port = int(api.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def trickle(self, data: bytes, every: float = 0.05) -> None:
        """Send ``data`` a byte at a time, as a slowloris client does (the pause is the client's
        behaviour, not a wait for the server); stops quietly once the server has closed."""
        with contextlib.suppress(ConnectionError):
            for byte in data:
                await self.send(bytes([byte]))
                await asyncio.sleep(every)

    async def answer(self) -> Answer:
        async with asyncio.timeout(WITHIN):
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            assert "content-length" in headers, head
            body = await self.reader.readexactly(int(headers["content-length"]))
        return Answer(int(status_line.split()[1]), headers, body)

    async def closed_by_server(self) -> bool:
        """Whether the server closes the connection (EOF or reset) rather than keeping it."""
        async with asyncio.timeout(WITHIN):
            try:
                return await self.reader.read() == b""
            except ConnectionResetError:
                return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def connections() -> AsyncIterator[list[Raw]]:
    opened: list[Raw] = []
    try:
        yield opened
    finally:
        for connection in opened:
            await connection.close()


def post_head(body_length: int | None = None, *, extra: str = "") -> bytes:
    framing = (
        "Transfer-Encoding: chunked\r\n" if body_length is None else f"Content-Length: {body_length}\r\n"
    )
    return (
        f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{framing}{extra}\r\n"
    ).encode()


def get_request(query_string: bytes, *, close: bool = False) -> bytes:
    connection = b"Connection: close\r\n" if close else b""
    return b"GET /graphql?" + query_string + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + connection + b"\r\n"


async def served(api: RunningApi, address: str = "127.0.0.1") -> bool:
    """A fresh connection from ``address`` gets a normal answer (False: it was refused, with a
    429 or, when the refusal's close crossed the request, a reset)."""
    connection = await Raw.open(api, address)
    try:
        await connection.send(post_head(len(GOOD)) + GOOD)
        answer = await connection.answer()
    except (ConnectionError, asyncio.IncompleteReadError):
        return False
    finally:
        await connection.close()
    if answer.status == 200:
        assert answer.json() == ANSWERED
        return True
    assert answer.status == 429, (answer.status, answer.body[:200])
    return False


# -- proxy headers (X-Forwarded-For) ------------------------------------------------------------------


def random_address() -> str:
    return f"198.51.100.{random.randrange(1, 255)}, 203.0.113.{random.randrange(1, 255)}"


def from_address(url: str, address: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=url, timeout=WITHIN, transport=transport)


async def statuses(client: httpx.AsyncClient, count: int, **headers: str) -> list[int]:
    codes = []
    for _ in range(count):
        response = await client.post(
            "/graphql", content=GOOD, headers={"Content-Type": "application/json", **headers}
        )
        codes.append(response.status_code)
    return codes


async def spoofing(client: httpx.AsyncClient, count: int, authorization: str | None = None) -> list[int]:
    """``count`` requests, each claiming another client address in X-Forwarded-For."""
    codes = []
    for _ in range(count):
        headers = {"Content-Type": "application/json", "X-Forwarded-For": random_address()}
        if authorization is not None:
            headers["Authorization"] = authorization
        codes.append((await client.post("/graphql", content=GOOD, headers=headers)).status_code)
    return codes


async def test_forwarded_for_from_loopback_does_not_escape_the_rate_limit_by_default(
    api_factory: ApiFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # uvicorn's own setting, which would trust every address: not ours to follow, and said so.
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    api = await api_factory(rate_limit_burst=5, rate_limit_per_second=SLOW)
    async with httpx.AsyncClient(base_url=api.url, timeout=WITHIN) as anonymous:
        codes = await spoofing(anonymous, 20)
    assert codes == [200] * 5 + [429] * 15, codes
    # Wrong credentials count against the sender's address: a made-up one does not help either.
    async with from_address(api.url, "127.0.0.2") as guesser:
        codes = await spoofing(guesser, 12, authorization="Bearer polly_AAAAAAAAAAAA_guessed")
    assert codes == [401] * 5 + [429] * 7, codes
    assert "FORWARDED_ALLOW_IPS is set but not used" in caplog.text


async def test_forwarded_for_is_honoured_only_from_listed_proxies(api_factory: ApiFactory) -> None:
    """With the proxy listed (an address, and a network of further proxies), each client's
    address is its own bucket; from an address not listed the header means nothing."""
    api = await api_factory(
        rate_limit_burst=5, rate_limit_per_second=SLOW, trusted_proxies="127.0.0.1, 10.0.0.0/8"
    )
    async with httpx.AsyncClient(base_url=api.url, timeout=WITHIN) as proxy:
        # One client behind the proxy spends its own burst...
        codes = await statuses(proxy, 8, **{"X-Forwarded-For": "203.0.113.7"})
        assert codes == [200] * 5 + [429] * 3, codes
        # ...and only its own: other clients, and the proxy itself, are untouched.
        assert await statuses(proxy, 1, **{"X-Forwarded-For": "203.0.113.8"}) == [200]
        assert await statuses(proxy, 1) == [200]
        # Through a second listed proxy (10.1.2.3) it is still the same client.
        assert await statuses(proxy, 1, **{"X-Forwarded-For": "203.0.113.7, 10.1.2.3"}) == [429]
    async with from_address(api.url, "127.0.0.2") as other:
        codes = await spoofing(other, 12)
    assert codes == [200] * 5 + [429] * 7, codes


async def test_forwarded_allow_ips_in_the_environment_does_not_turn_proxy_headers_back_on(
    sandbox: Sandbox, redis_url: str, tmp_path: Path
) -> None:
    """uvicorn reads FORWARDED_ALLOW_IPS itself; ``polly api`` must not let it decide whom to
    believe. (The real command, as a deployment starts it.)"""
    env = polly_environment(
        sandbox,
        redis_url,
        tmp_path,
        FORWARDED_ALLOW_IPS="*",
        POLLY_RATE_LIMIT_BURST="5",
        POLLY_RATE_LIMIT_PER_SECOND=str(SLOW),
    )
    async with (
        announced(sys.executable, "-m", "app", "api", "--port", "0", env=env) as api,
        httpx.AsyncClient(base_url=api.url, timeout=WITHIN) as anonymous,
    ):
        codes = await spoofing(anonymous, 20)
    assert codes == [200] * 5 + [429] * 15, codes


# -- 414 and 431: heads too large to read -------------------------------------------------------------


@pytest.mark.parametrize("size", [64 * 1024 + 1, 100 * 1024])
async def test_a_query_string_over_64_kib_gets_414_with_a_json_error(api: RunningApi, size: int) -> None:
    query_string = b"query=" + b"%7BapiVersion%7D" + b"+" * (size - 22)
    assert len(query_string) == size
    async with connections() as opened:
        opened.append(connection := await Raw.open(api))
        await connection.send(get_request(query_string))
        answer = await connection.answer()
        assert answer.status == 414, (answer.status, answer.body[:200])
        error = answer.error()
        assert error["extensions"]["code"] == "BAD_REQUEST" and "POST" in error["message"], error
        assert answer.headers["x-request-id"] and "app;dur=" in answer.headers["server-timing"]
        assert await connection.closed_by_server()
    # A long query string within the limit is still answered.
    async with connections() as opened:
        opened.append(connection := await Raw.open(api))
        await connection.send(get_request(b"query=%7BapiVersion%7D" + b"+" * 60_000))
        answer = await connection.answer()
        assert (answer.status, answer.json()) == (200, ANSWERED)


async def test_request_headers_over_the_limit_get_431(api: RunningApi) -> None:
    async with connections() as opened:
        opened.append(connection := await Raw.open(api))
        padding = "".join(f"X-Padding-{n}: {'a' * 1000}\r\n" for n in range(80))  # 80 KB of fields
        await connection.send(post_head(len(GOOD), extra=padding) + GOOD)
        answer = await connection.answer()
        assert answer.status == 431, (answer.status, answer.body[:200])
        assert answer.error()["extensions"]["code"] == "BAD_REQUEST"
        assert await connection.closed_by_server()
        # Within the bound, however many reads it comes in, a large head is read as usual.
        opened.append(connection := await Raw.open(api))
        padding = "".join(f"X-Padding-{n}: {'a' * 1000}\r\n" for n in range(60))  # 60 KB of fields
        await connection.send(post_head(len(GOOD), extra=padding) + GOOD)
        assert (await connection.answer()).json() == ANSWERED


# -- heads and bodies that must arrive in time ----------------------------------------------------------


async def test_a_head_that_does_not_arrive_in_time_gets_408_and_the_connection_closes(
    api_factory: ApiFactory,
) -> None:
    api = await api_factory(header_timeout=1, body_timeout=1)
    async with connections() as opened:
        # Requests in several parts, each in time, on one connection kept alive: served.
        opened.append(connection := await Raw.open(api))
        for _ in range(3):
            await connection.send(post_head(len(GOOD))[:20])
            await connection.send(post_head(len(GOOD))[20:])
            await connection.send(GOOD[:5])
            await connection.send(GOOD[5:])
            assert (await connection.answer()).json() == ANSWERED
        # Nothing at all after connecting.
        opened.append(silent := await Raw.open(api))
        # A head trickling in a byte at a time, never finished: each byte is no reprieve.
        opened.append(trickling := await Raw.open(api))
        trickler = asyncio.create_task(
            trickling.trickle(b"GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 10_000)
        )
        # After a first request served, the next one's head trickling on the same connection.
        opened.append(kept := await Raw.open(api))
        await kept.send(post_head(len(GOOD)) + GOOD)
        assert (await kept.answer()).json() == ANSWERED
        second = asyncio.create_task(kept.trickle(b"GET /graphql HTTP/1.1\r\nX-Slow: " + b"a" * 10_000))
        try:
            for connection in (silent, trickling, kept):
                answer = await connection.answer()
                assert answer.status == 408, (answer.status, answer.body[:200])
                error = answer.error()
                assert error["extensions"]["code"] == "REQUEST_TIMEOUT" and "1 s" in error["message"], error
                assert answer.headers["connection"] == "close"
                assert await connection.closed_by_server()
        finally:
            trickler.cancel()
            second.cancel()
    assert await served(api)


async def test_a_body_that_does_not_arrive_in_time_gets_408(
    api_factory: ApiFactory, caplog: pytest.LogCaptureFixture
) -> None:
    api = await api_factory(body_timeout=1)
    async with connections() as opened:
        # Declared, partly sent, then nothing.
        opened.append(stalled := await Raw.open(api))
        await stalled.send(post_head(100) + b'{"query": ')
        # Chunked, one chunk, then nothing.
        opened.append(chunked := await Raw.open(api))
        await chunked.send(post_head(None) + b'a\r\n{"query": \r\n')
        # A byte at a time: it keeps coming, but the body as a whole is late.
        opened.append(dripping := await Raw.open(api))
        await dripping.send(post_head(10_000))
        dripper = asyncio.create_task(dripping.trickle(b" " * 10_000))
        try:
            for connection in (stalled, chunked, dripping):
                answer = await connection.answer()
                assert answer.status == 408, (answer.status, answer.body[:200])
                error = answer.error()
                assert error["extensions"]["code"] == "REQUEST_TIMEOUT" and "body" in error["message"], error
                assert answer.headers["connection"] == "close"
                assert await connection.closed_by_server()
        finally:
            dripper.cancel()
    # A slow client is no error of the server's.
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")], caplog.text
    assert await served(api)


async def test_a_body_left_unread_after_the_answer_cannot_hold_the_connection(
    api_factory: ApiFactory,
) -> None:
    """Refused at once for its declared size (413), the body then drips: the connection ends."""
    api = await api_factory(body_timeout=1)
    async with connections() as opened:
        opened.append(connection := await Raw.open(api))
        await connection.send(post_head(2_000_000))
        answer = await connection.answer()
        assert answer.status == 413, (answer.status, answer.body[:200])
        dripper = asyncio.create_task(connection.trickle(b" " * 100_000))
        try:
            assert await connection.closed_by_server()
        finally:
            dripper.cancel()


# -- connections per address ------------------------------------------------------------------------


async def test_connections_past_the_limit_per_address_are_refused_with_429(api_factory: ApiFactory) -> None:
    api = await api_factory(max_connections_per_address=3)
    async with connections() as opened:
        for _ in range(3):  # each proven open: answered, and kept alive
            opened.append(connection := await Raw.open(api))
            await connection.send(post_head(len(GOOD)) + GOOD)
            assert (await connection.answer()).json() == ANSWERED
        opened.append(extra := await Raw.open(api))
        answer = await extra.answer()
        assert answer.status == 429, (answer.status, answer.body[:200])
        error = answer.error()
        assert error["extensions"]["code"] == "TOO_MANY_CONNECTIONS" and "3" in error["message"], error
        assert int(answer.headers["retry-after"]) >= 1
        assert await extra.closed_by_server()
        # Another address is not affected.
        assert await served(api, "127.0.0.2")
        # A connection closed gives its place back.
        await opened.pop(0).close()
        await wait_until(lambda: served(api), within=WITHIN)


# Sockets opened before every worker holds as many as it allows: the kernel picks each
# socket's worker, so some land on a worker that is full already.
MOST_TRIES = 40


@pytest.mark.workers_1_and_2
async def test_websockets_count_as_connections_and_outlive_the_request_deadlines(
    api_factory: ApiFactory,
) -> None:
    """A WebSocket is a connection like any other, held as long as it is used: the head and
    body deadlines are a request's, not the socket's. Each worker counts the connections it
    serves (README), so sockets are opened until every worker holds as many as it allows."""
    limit = 2
    api = await api_factory(
        max_connections_per_address=limit, header_timeout=1, body_timeout=1, keep_alive_interval=0.5
    )
    async with contextlib.AsyncExitStack() as stack:
        by_worker: dict[int, list[ClientConnection]] = {worker: [] for worker in range(len(api.workers))}
        tries = 0
        while any(len(sockets) < limit for sockets in by_worker.values()):
            tries += 1
            assert tries <= MOST_TRIES, {worker: len(sockets) for worker, sockets in by_worker.items()}
            refusal: Exception | None = None
            try:
                ws = await stack.enter_async_context(
                    websockets.connect(
                        api.ws_url,
                        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
                        additional_headers=api.auth,
                    )
                )
            except (websockets.InvalidStatus, websockets.InvalidMessage, OSError) as error:
                refusal = error
            if refusal is not None:
                # Only a worker that holds all it allows may turn a socket away (a 429, or the
                # connection closed as the handshake crossed it).
                assert any(len(sockets) >= limit for sockets in by_worker.values()), refusal
                if isinstance(refusal, websockets.InvalidStatus):
                    assert refusal.response.status_code == 429, refusal
                continue
            await ws.send(json.dumps({"type": "connection_init"}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            by_worker[api.worker_of(ws.local_address)].append(ws)
        assert not await served(api)

        async def outlives_the_deadlines(ws: ClientConnection) -> None:
            # Four keep-alive pings half a second apart: the socket lives past both deadlines...
            pings = 0
            async with asyncio.timeout(WITHIN):
                while pings < 4:
                    if json.loads(await ws.recv())["type"] == "ping":
                        pings += 1
                        await ws.send(json.dumps({"type": "pong"}))
            # ...and still answers.
            await ws.send(
                json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "{ apiVersion }"}})
            )
            async with asyncio.timeout(WITHIN):
                while (message := json.loads(await ws.recv()))["type"] == "ping":
                    await ws.send(json.dumps({"type": "pong"}))
            assert message == {"id": "1", "type": "next", "payload": ANSWERED}

        # A socket on each worker, at once.
        await asyncio.gather(*(outlives_the_deadlines(sockets[0]) for sockets in by_worker.values()))
    # Closed, they give their places back.
    await wait_until(lambda: served(api), within=WITHIN)


async def test_a_listed_proxy_is_not_limited_to_a_clients_share_of_connections(
    api_factory: ApiFactory,
) -> None:
    """A proxy carries many clients' requests; its connections are not one client's."""
    api = await api_factory(max_connections_per_address=2, trusted_proxies="127.0.0.1")
    async with connections() as opened:
        for address, allowed in (("127.0.0.1", 5), ("127.0.0.2", 2)):
            for _ in range(allowed):
                opened.append(connection := await Raw.open(api, address))
                await connection.send(post_head(len(GOOD)) + GOOD)
                assert (await connection.answer()).json() == ANSWERED
        assert not await served(api, "127.0.0.2")
