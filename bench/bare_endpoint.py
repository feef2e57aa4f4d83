"""The baseline for bench/roles_throughput: a bare Starlette endpoint returning bytes from Redis."""

from __future__ import annotations

import os

import redis.asyncio as redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

client = redis.Redis.from_url(os.environ["BARE_REDIS_URL"])
KEY = os.environ.get("BARE_KEY", "bench:response")


async def graphql(request: Request) -> Response:
    body = await client.get(KEY)
    return Response(body, media_type="application/graphql-response+json")


app = Starlette(routes=[Route("/graphql", graphql), Route("/healthz", lambda request: Response(b"ok"))])
