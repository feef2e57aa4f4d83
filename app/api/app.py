"""The ASGI application of ``polly api``.

GraphQL at ``/graphql`` (HTTP queries, WebSocket and Server-Sent Events subscriptions), the
front-end stub at ``/``, and ``/healthz`` and ``/readyz``. The lifespan opens Redis, the
Discord client and the event hub, and closes them on shutdown. Discord being down at start is
not fatal: the service starts degraded and logs in on first use.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as redis
from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.requests import HTTPConnection, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from app.api.health import healthz, readyz
from app.cache.connection import Breaker, open_redis
from app.cache.event_log import EventLog
from app.cache.keys import CacheKeys
from app.cache.response_cache import ResponseCache
from app.cache.role_cache import RoleCache
from app.discord.client import DiscordRest, DiscordRestError, DiscordUnauthorized
from app.graphql.context import RequestContext
from app.graphql.fanout import Fanout
from app.graphql.http import GraphQLEndpoint
from app.graphql.schema import schema
from app.graphql.streaming import StreamingView, wants_event_stream
from app.live.feed import LiveFeed
from app.live.hub import EventHub
from app.roles.service import RoleService, ServiceLimits
from app.settings import Settings, require_token

log = logging.getLogger(__name__)

HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@dataclass
class Services:
    settings: Settings
    redis: redis.Redis
    discord: DiscordRest
    role_cache: RoleCache
    roles: RoleService
    hub: EventHub
    graphql: GraphQLEndpoint
    streaming: StreamingView


async def open_services(settings: Settings, client: redis.Redis | None = None) -> Services:
    """Everything the API needs; ``client`` replaces the Redis of ``POLLY_REDIS_URL`` (the demo)."""
    if client is None:
        client = open_redis(
            str(settings.redis_url),
            timeout=settings.redis_timeout,
            max_connections=settings.redis_max_connections,
        )
    discord = DiscordRest(
        api_url=str(settings.discord_api_url),
        gateway_url=str(settings.discord_gateway_url),
        token=require_token(settings),
        timeout=settings.discord_timeout,
        max_in_flight=settings.max_concurrent_fills * 3,  # a fill is three calls
    )
    try:
        await discord.open()
    except DiscordUnauthorized:
        await client.aclose()
        raise
    except DiscordRestError as error:
        log.warning("Discord is unreachable (%s); starting degraded, logging in on first use.", error)
    role_cache = RoleCache(
        client,
        keys=CacheKeys(settings.cache_prefix),
        breaker=Breaker(),
        ttl=settings.role_cache_ttl,
        last_known_ttl=settings.stale_grace,
        negative_ttl=settings.negative_cache_ttl,
    )
    roles = RoleService(
        role_cache,
        discord,
        ServiceLimits(
            fill_wait=settings.fill_wait,
            discord_timeout=settings.discord_timeout,
            max_concurrent_fills=settings.max_concurrent_fills,
        ),
    )
    hub = EventHub(role_cache, queue_limit=settings.subscriber_queue_limit)
    live = LiveFeed(hub, EventLog(role_cache))
    responses = ResponseCache(role_cache, ttl=settings.role_cache_ttl) if settings.response_cache else None

    def context(scope: str) -> RequestContext:
        return RequestContext(roles, scope=scope, max_guilds=settings.max_guilds_per_request, live=live)

    def scope_of(connection: HTTPConnection) -> str:
        return "public"

    endpoint = GraphQLEndpoint(schema, lambda request, scope: context(scope), responses, scope_of)
    streaming = StreamingView(
        schema,
        Fanout(schema, context, buffer_limit=settings.subscriber_buffer_limit),
        lambda connection: context(scope_of(connection)),
        keep_alive_interval=settings.keep_alive_interval,
        connection_init_timeout=settings.connection_init_timeout,
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
    )
    return Services(settings, client, discord, role_cache, roles, hub, endpoint, streaming)


async def close_services(services: Services) -> None:
    await services.hub.close()
    await services.discord.close()
    await services.redis.aclose()


def frontend_directory(settings: Settings) -> Path | None:
    if settings.frontend_dir is not None:
        return settings.frontend_dir
    bundled = Path(__file__).resolve().parents[2] / "frontend-stub"
    return bundled if (bundled / "index.html").is_file() else None


class PollyApp:
    """The Starlette application, with ``/graphql``'s WebSocket and SSE traffic handed to the
    streaming view before Starlette's middleware (which would wrap the raw ASGI ``send`` that
    fan-out writes through)."""

    def __init__(self, starlette: Starlette) -> None:
        self.starlette = starlette

    @property
    def state(self) -> State:
        return self.starlette.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("websocket", "http") and scope["path"] == "/graphql":
            services: Services | None = getattr(self.starlette.state, "services", None)
            if services is not None and (scope["type"] == "websocket" or wants_event_stream(scope)):
                await services.streaming(scope, receive, send)
                return
        await self.starlette(scope, receive, send)


def create_app(settings: Settings, *, redis_client: redis.Redis | None = None) -> PollyApp:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await open_services(settings, redis_client)
        app.state.services = services
        # Everything built so far lives as long as the process: keep it out of the garbage
        # collector's scans, which otherwise show up as latency spikes under load.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await close_services(services)

    async def graphql(request: Request) -> Response:
        endpoint: GraphQLEndpoint = request.app.state.services.graphql
        return await endpoint.handle(request)

    routes: list[Any] = [
        # Every method reaches the endpoint, which answers the others in GraphQL's terms.
        Route("/graphql", graphql, methods=HTTP_METHODS),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
    ]
    stub = frontend_directory(settings)
    if stub is not None:
        index = stub / "index.html"

        async def page(request: Request) -> Response:
            return FileResponse(index, headers={"Cache-Control": "no-cache"})

        routes += [Route("/", page), Mount("/static", StaticFiles(directory=stub), name="static")]
    else:

        async def no_page(request: Request) -> Response:
            return JSONResponse({"message": "No front-end stub here; set POLLY_FRONTEND_DIR."}, 404)

        routes.append(Route("/", no_page))
    return PollyApp(Starlette(routes=routes, lifespan=lifespan))
