"""The baseline for bench/fanout: a bare Starlette WebSocket endpoint that acknowledges
graphql-transport-ws and sends one prebuilt message to every socket through the ASGI send — the
least a Python ASGI server can do per subscriber.

POST /fire broadcasts the request's body. With ``BARE_REDIS_URL`` set (several processes on one
port), POST /fire publishes it to a Redis channel instead and every process broadcasts what it
receives there to its own sockets: the least a fan-out over processes can do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator

import redis.asyncio as redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

CHANNEL = "bench:broadcast"
REDIS_URL = os.environ.get("BARE_REDIS_URL")
sockets: set[WebSocket] = set()


async def graphql(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol="graphql-transport-ws")
    try:
        while True:
            message = json.loads(await websocket.receive_text())
            if message.get("type") == "connection_init":
                await websocket.send_text('{"type":"connection_ack"}')
            elif message.get("type") == "subscribe":
                sockets.add(websocket)
    except WebSocketDisconnect:
        sockets.discard(websocket)


async def broadcast(message: str) -> None:
    for websocket in list(sockets):
        await websocket.send_text(message)


async def fire(request: Request) -> PlainTextResponse:
    message = (await request.body()).decode()
    if REDIS_URL is None:
        await broadcast(message)
    else:
        async with redis.Redis.from_url(REDIS_URL) as client:
            await client.publish(CHANNEL, message)
    return PlainTextResponse(str(len(sockets)))


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(len(sockets)))


async def relay(client: redis.Redis) -> None:
    async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(CHANNEL)
        async for message in pubsub.listen():
            await broadcast(message["data"].decode())


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    if REDIS_URL is None:
        yield
        return
    async with redis.Redis.from_url(REDIS_URL) as client:
        task = asyncio.create_task(relay(client))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


app = Starlette(
    routes=[
        WebSocketRoute("/graphql", graphql),
        Route("/fire", fire, methods=["POST"]),
        Route("/healthz", healthz),
    ],
    lifespan=lifespan,
)
