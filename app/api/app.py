"""The Starlette application: GraphQL at /graphql, health at /healthz and /readyz.

The lifespan opens Redis and the Discord client and closes them on shutdown. Discord being
down at start is not fatal: the service starts degraded and logs in on first use.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.health import healthz, readyz
from app.cache.connection import Breaker, open_redis
from app.cache.keys import CacheKeys
from app.cache.response_cache import ResponseCache
from app.cache.role_cache import RoleCache
from app.discord.client import DiscordRest, DiscordRestError, DiscordUnauthorized
from app.graphql.context import RequestContext
from app.graphql.http import GraphQLEndpoint
from app.graphql.schema import schema
from app.roles.service import RoleService, ServiceLimits
from app.settings import Settings, require_token

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    redis: redis.Redis
    discord: DiscordRest
    role_cache: RoleCache
    roles: RoleService
    graphql: GraphQLEndpoint


async def open_services(settings: Settings) -> Services:
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
    responses = ResponseCache(role_cache, ttl=settings.role_cache_ttl) if settings.response_cache else None

    def context(request: Request, scope: str) -> RequestContext:
        return RequestContext(roles, scope=scope, max_guilds=settings.max_guilds_per_request)

    endpoint = GraphQLEndpoint(schema, context, responses)
    return Services(settings, client, discord, role_cache, roles, endpoint)


async def close_services(services: Services) -> None:
    await services.discord.close()
    await services.redis.aclose()


def create_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await open_services(settings)
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

    return Starlette(
        routes=[
            # Every method reaches the endpoint, which answers the others in GraphQL's terms.
            Route("/graphql", graphql, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ],
        lifespan=lifespan,
    )
