"""The baseline for bench/fanout: a bare Starlette WebSocket endpoint that acknowledges
graphql-transport-ws and, on POST /fire, sends one prebuilt message to every socket through
the ASGI send — the least a Python ASGI server can do per subscriber."""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

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


async def fire(request: Request) -> PlainTextResponse:
    message = (await request.body()).decode()
    for websocket in list(sockets):
        await websocket.send_text(message)
    return PlainTextResponse(str(len(sockets)))


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(len(sockets)))


app = Starlette(
    routes=[
        WebSocketRoute("/graphql", graphql),
        Route("/fire", fire, methods=["POST"]),
        Route("/healthz", healthz),
    ]
)
