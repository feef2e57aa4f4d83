"""The ASGI application of ``polly api``.

GraphQL at ``/graphql`` (HTTP queries, WebSocket and Server-Sent Events subscriptions), the
front-end stub at ``/``, and ``/healthz`` and ``/readyz``. The lifespan opens Redis, the
Discord client and the event hub, and closes them on shutdown. Discord being down at start is
not fatal: the service starts degraded and logs in on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as redis
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.access.authenticator import Authenticator
from app.access.cookies import CookieSigner
from app.access.credentials import public_origin
from app.access.gatekeeper import Gatekeeper
from app.access.login import LoginFlow
from app.access.principal import Principal
from app.api.auth import AuthRoutes
from app.api.connections import ConnectionGuard, TransportLimits
from app.api.health import healthz, readyz
from app.api.results_csv import ResultsExport
from app.cache.access_cache import AccessCache
from app.cache.connection import Breaker, RedisClient, open_redis
from app.cache.event_log import EventLog
from app.cache.gate import RequestGate
from app.cache.keys import CacheKeys
from app.cache.poll_events import PollEventLog
from app.cache.poll_results import PollResultsCache
from app.cache.response_cache import ResponseCache
from app.cache.role_cache import RoleCache
from app.collector import settle
from app.discord.client import DiscordNotFound, DiscordRest, DiscordRestError, DiscordUnauthorized
from app.discord.oauth import DiscordOAuth
from app.graphql.context import RequestContext
from app.graphql.fanout import Fanout
from app.graphql.heartbeat import Heartbeat
from app.graphql.http import GraphQLEndpoint
from app.graphql.limits import QueryLimits
from app.graphql.schema import build_schema
from app.graphql.streaming import StreamingView, wants_event_stream
from app.live.access_watch import AccessWatch
from app.live.feed import LiveFeed
from app.live.hub import EventHub
from app.polls.event_reads import EventReads
from app.polls.events import PollEvents
from app.polls.record import PollRecord
from app.polls.service import PollService
from app.polls.votes import VoteService
from app.roles.errors import DiscordUnavailable
from app.roles.service import RoleService, ServiceLimits
from app.settings import Settings, database_url, require_secret_key, require_token
from app.storage.api_keys import ApiKeyStore
from app.storage.ballots import BallotStore, Results
from app.storage.database import Database, DatabaseError
from app.storage.login_sessions import LoginSessionStore
from app.storage.polls import PollStore
from app.telemetry import exposition, logs, requests
from app.telemetry.metrics import OPEN_CONNECTIONS, SUBSCRIPTIONS

log = logging.getLogger(__name__)


async def _votes_changed(events: PollEvents, poll: PollRecord) -> None:
    events.votes_changed(poll)


@dataclass
class Services:
    settings: Settings
    redis: RedisClient
    discord: DiscordRest
    role_cache: RoleCache
    roles: RoleService
    hub: EventHub
    poll_hub: EventHub
    events: PollEvents
    results_export: ResultsExport
    graphql: GraphQLEndpoint
    streaming: StreamingView
    database: Database
    keys: ApiKeyStore
    authenticator: Authenticator
    auth: AuthRoutes
    oauth: DiscordOAuth | None


async def open_services(settings: Settings, client: RedisClient | None = None) -> Services:
    """Everything the API needs; ``client`` replaces the Redis of ``POLLY_REDIS_URL`` (the demo)."""
    secret = require_secret_key(settings)
    database = Database(database_url(settings))
    try:
        await database.upgrade()
    except BaseException:
        await database.close()
        raise
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
        await database.close()
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
    poll_streams = role_cache.keys.poll_events
    poll_hub = EventHub(role_cache, queue_limit=settings.subscriber_queue_limit, stream=poll_streams)
    poll_live = LiveFeed(poll_hub, EventLog(role_cache, stream=poll_streams))
    events = PollEvents(PollEventLog(role_cache, stream_length=settings.event_stream_length))
    responses = ResponseCache(role_cache, ttl=settings.role_cache_ttl) if settings.response_cache else None

    allowed_origins = frozenset(settings.cors_origins) - {"*"}
    if settings.public_url is not None:
        # Behind a proxy that ends TLS, requests reach us as http:// while browsers say https://.
        allowed_origins |= {public_origin(str(settings.public_url))}
    oauth = None
    if settings.discord_client_secret is not None:
        oauth = DiscordOAuth(
            api_url=str(settings.discord_api_url),
            # A bot's application id is its user id, unless told otherwise.
            client_id=settings.discord_client_id or (lambda: str(discord.bot_user_id)),
            client_secret=settings.discord_client_secret.get_secret_value(),
            timeout=settings.discord_timeout,
        )
    keys = ApiKeyStore(database)
    sessions = LoginSessionStore(database)
    signer = CookieSigner(secret)
    authenticator = Authenticator(
        cache=AccessCache(role_cache),
        keys=keys,
        sessions=sessions,
        signer=signer,
        oauth=oauth,
        key_ttl=settings.api_key_cache_ttl,
        viewer_ttl=settings.viewer_cache_ttl,
        session_ttl=settings.session_ttl,
        viewer_grace=settings.viewer_grace,
        allowed_origins=allowed_origins,
    )
    auth = AuthRoutes(
        None if oauth is None else LoginFlow(oauth, sessions, signer, authenticator),
        public_url=None if settings.public_url is None else str(settings.public_url),
        session_ttl=settings.session_ttl,
        allowed_origins=allowed_origins,
    )
    gate = RequestGate(role_cache, rate=settings.rate_limit_per_second, burst=settings.rate_limit_burst)
    schema = build_schema(
        QueryLimits(
            max_depth=settings.max_query_depth,
            max_aliases=settings.max_aliases,
            max_tokens=settings.max_tokens,
            max_cost=settings.max_query_cost,
            introspection=settings.introspection,
        )
    )

    poll_store = PollStore(database)
    polls = PollService(poll_store, roles, events=events)

    async def member_roles(guild_id: int, user_id: int) -> frozenset[int]:
        # Only polls restricted to some roles ask; the bot sees the member as Discord has it now.
        try:
            member = await discord.member(guild_id, user_id)
        except DiscordNotFound:
            return frozenset()
        except DiscordRestError as error:
            raise DiscordUnavailable(
                "Discord cannot tell your roles now, and this poll takes votes from some roles only;"
                " try again shortly."
            ) from error
        return frozenset(int(role) for role in member.get("roles", []))

    votes = VoteService(
        poll_store,
        BallotStore(database),
        PollResultsCache(role_cache, ttl=settings.role_cache_ttl),
        member_roles=member_roles,
        on_change=lambda poll, results: _votes_changed(events, poll),
    )

    async def read_for_event(poll_id: int) -> tuple[PollRecord | None, Results | None]:
        record = (await poll_store.get_many([poll_id])).get(poll_id)
        results = (await votes.results([poll_id])).get(poll_id) if record is not None else None
        return record, results

    poll_reads = EventReads(read_for_event)

    def context(principal: Principal, request_id: str | None = None) -> RequestContext:
        context = RequestContext(
            roles,
            principal=principal,
            max_guilds=settings.max_guilds_per_request,
            live=live,
            polls=polls,
            votes=votes,
            poll_live=poll_live,
            poll_reads=poll_reads,
        )
        if request_id is not None:
            context.request_id = request_id
        return context

    endpoint = GraphQLEndpoint(
        schema,
        context,
        responses,
        Gatekeeper(authenticator, gate),
        max_body_bytes=settings.max_body_bytes,
        rejected_document_ms=settings.rejected_document_ms,
    )
    streaming = StreamingView(
        schema,
        Fanout(schema, buffer_limit=settings.subscriber_buffer_limit),
        context,
        authenticator,
        gate,
        # Access is checked again as often as a copy of the caller's key or guilds may be cached.
        heartbeat=Heartbeat(
            settings.keep_alive_interval, min(settings.api_key_cache_ttl, settings.viewer_cache_ttl)
        ),
        connection_init_timeout=settings.connection_init_timeout,
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        allowed_origins=[*settings.cors_origins, *sorted(allowed_origins - set(settings.cors_origins))],
        access_watch=AccessWatch(role_cache),
    )
    streaming.access_watch.start()
    return Services(
        settings, client, discord, role_cache, roles, hub, poll_hub, events,
        ResultsExport(endpoint.gatekeeper, polls, votes), endpoint, streaming, database, keys, authenticator,
        auth, oauth,
    )  # fmt: skip


async def close_services(services: Services) -> None:
    await services.streaming.access_watch.close()
    await services.streaming.heartbeat.close()
    await services.hub.close()
    await services.events.close()
    await services.poll_hub.close()
    await services.discord.close()
    if services.oauth is not None:
        await services.oauth.close()
    await close_redis(services.redis)
    await services.database.close()


async def close_redis(client: RedisClient) -> None:
    """Release every Redis connection, even when the loop is too busy to see them close in time.

    redis-py closes each socket, then waits for the close to be confirmed for at most the
    connect timeout (0.5 s). After thousands of WebSockets have just closed, the loop can be
    that far behind: the sockets are already closing by then, so the wait running out is no
    failure of the shutdown, and the database must still be closed after it."""
    try:
        await client.aclose()
    except redis.TimeoutError:
        log.info("Redis connections were still closing at shutdown; they close with the loop.")


SESSION_PURGE_INTERVAL = 3600.0


async def purge_sessions(sessions: LoginSessionStore) -> None:
    """Ended logins are refused when presented anyway; this keeps them from piling up."""
    while True:
        try:
            removed = await sessions.delete_expired()
        except DatabaseError as error:
            log.warning("Could not remove expired logins: %s", error)
        else:
            if removed:
                log.info("Removed %d expired logins.", removed)
        await asyncio.sleep(SESSION_PURGE_INTERVAL)


def frontend_directory(settings: Settings) -> Path | None:
    if settings.frontend_dir is not None:
        return settings.frontend_dir
    bundled = Path(__file__).resolve().parents[2] / "frontend-stub"
    return bundled if (bundled / "index.html").is_file() else None


class PollyApp:
    """The Starlette application, with ``/graphql``'s WebSocket and SSE traffic handed to the
    streaming view before Starlette's middleware (which would wrap the raw ASGI ``send`` that
    fan-out writes through)."""

    def __init__(self, starlette: Starlette, cors_origins: list[str], *, log_requests: bool = True) -> None:
        self.starlette = starlette
        self.log_requests = log_requests
        self._handle: ASGIApp = self._dispatch
        if cors_origins:
            self._handle = CORSMiddleware(
                self._dispatch,
                allow_origins=cors_origins,
                # Cookies only go with a named origin; browsers refuse credentials with "*".
                allow_credentials="*" not in cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
                expose_headers=["Retry-After", "X-Request-Id"],
                max_age=600,
            )

    @property
    def state(self) -> State:
        return self.starlette.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            with (
                logs.about(request_id=secrets.token_hex(8)),
                OPEN_CONNECTIONS.labels("websocket").track_inprogress(),
            ):
                await self._handle(scope, receive, send)
            return
        if scope["type"] != "http":
            await self._handle(scope, receive, send)
            return
        if scope["path"] == "/graphql" and wants_event_stream(scope):
            with (
                logs.about(request_id=secrets.token_hex(8)),
                OPEN_CONNECTIONS.labels("sse").track_inprogress(),
                SUBSCRIPTIONS.labels("sse").track_inprogress(),
            ):
                await self._handle(scope, receive, send)
            return
        started = time.perf_counter()
        record = requests.begin(scope["method"], scope["path"])
        answered = False

        async def timed(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                # How long the server took to start answering: the figure limits are judged by.
                took = time.perf_counter() - started
                answered = True
                requests.finish(record, message["status"], took, log_requests=self.log_requests)
                headers = [
                    *message.get("headers", ()),
                    (b"server-timing", f"app;dur={took * 1000:.2f}".encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self._handle(scope, receive, timed)
        except BaseException:
            if not answered:  # uvicorn answers 500
                requests.finish(record, 500, time.perf_counter() - started, log_requests=self.log_requests)
            raise

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("websocket", "http") and scope["path"] == "/graphql":
            services: Services | None = getattr(self.starlette.state, "services", None)
            if services is not None:
                if scope["type"] == "websocket":
                    await services.streaming(scope, receive, send)
                elif wants_event_stream(scope):
                    refusal = await services.graphql.admit_stream(Request(scope, receive))
                    if refusal is None:
                        await services.streaming(scope, receive, send)
                    else:
                        await refusal(scope, receive, send)
                else:
                    # The hot path: straight to the endpoint, past Starlette's routing and
                    # middleware layers, which cost more than a cached answer does.
                    response = await _graphql_answer(services.graphql, Request(scope, receive))
                    await response(scope, receive, send)
                return
        await self.starlette(scope, receive, send)


async def _graphql_answer(endpoint: GraphQLEndpoint, request: Request) -> Response:
    try:
        return await endpoint.handle(request)
    except ClientDisconnect:
        # The client left while its body was being read: how connections end, not a fault.
        # Nobody reads this answer; it only ends the request.
        log.debug("A client left before its request body arrived.")
        return Response(status_code=400)
    except Exception:
        record = requests.current()
        request_id = record.id if record is not None else secrets.token_hex(8)
        log.exception("Unexpected error answering /graphql (request %s)", request_id)
        message = f"Internal error; quote request id {request_id} when reporting it."
        body = {
            "errors": [
                {"message": message, "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}}
            ]
        }
        return JSONResponse(body, 500, headers={"X-Request-Id": request_id})


def _auth(
    action: Callable[[AuthRoutes, Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """A route to one of the login endpoints, which exist once the lifespan has built them."""

    async def endpoint(request: Request) -> Response:
        return await action(request.app.state.services.auth, request)

    return endpoint


async def _results_csv(request: Request) -> Response:
    export: ResultsExport = request.app.state.services.results_export
    return await export(request)


def create_app(settings: Settings, *, redis_client: RedisClient | None = None) -> PollyApp:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await open_services(settings, redis_client)
        app.state.services = services
        exposition.start()
        settle()
        background = [
            asyncio.create_task(purge_sessions(LoginSessionStore(services.database))),
        ]
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await close_services(services)

    routes: list[Any] = [
        Route("/auth/login", _auth(AuthRoutes.login)),
        Route("/auth/callback", _auth(AuthRoutes.callback)),
        Route("/auth/logout", _auth(AuthRoutes.logout), methods=["GET", "POST"]),
        Route("/polls/{poll_id}/results.csv", _results_csv),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", exposition.metrics_endpoint),
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
    return PollyApp(
        Starlette(routes=routes, lifespan=lifespan), settings.cors_origins, log_requests=settings.request_log
    )


def server_config(
    app: PollyApp, settings: Settings, *, host: str, port: int, log_level: str
) -> uvicorn.Config:
    """How uvicorn serves the API, the same for polly api, the demo and the tests.

    Every connection goes through app/api/connections.py: uvicorn's HTTP protocol fronted by
    ours (head deadline, head size, connections per address), the application behind an ASGI
    middleware (body deadline; proxy headers believed only from POLLY_TRUSTED_PROXIES)."""
    if "FORWARDED_ALLOW_IPS" in os.environ:
        log.warning(
            "FORWARDED_ALLOW_IPS is set but not used: polly api believes X-Forwarded-For only from"
            " the proxies POLLY_TRUSTED_PROXIES lists (%s).",
            ", ".join(map(str, settings.trusted_proxies)) or "none",
        )
    guard = ConnectionGuard(app, TransportLimits.from_settings(settings))
    return uvicorn.Config(
        guard,
        http=guard.protocol,
        # uvicorn's own would believe X-Forwarded-For from 127.0.0.1 (or $FORWARDED_ALLOW_IPS)
        # before anything of ours runs; the guard applies it for the listed proxies only.
        proxy_headers=False,
        host=host,
        port=port,
        log_level=log_level,
        # uvicorn's lines go through our handler (JSON when asked, secrets taken out), not
        # through the text handlers uvicorn would install for its own loggers.
        log_config=None,
        access_log=False,
        lifespan="on",
        # Subscription messages are small and sent to many sockets at once; per-socket
        # compression contexts would cost memory and a deflate per send.
        ws_per_message_deflate=False,
        # A WebSocket message is a request like any other: the same bound as an HTTP body.
        ws_max_size=settings.max_body_bytes,
        # The API's heartbeat (app/graphql/heartbeat.py) keeps every socket alive on one
        # schedule; uvicorn's ping would add a timer per socket.
        ws_ping_interval=None,
    )
