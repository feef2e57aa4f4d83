"""The sandbox's REST API under ``/api/v10``: the routes this product needs, as Discord serves them."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from app.discord.snowflake import parse_snowflake
from app.sandbox import errors, shapes
from app.sandbox.bodies import (
    ChannelFields,
    MemberFields,
    OverwriteFields,
    OverwritePut,
    RoleFields,
    RolePosition,
)
from app.sandbox.errors import DiscordError
from app.sandbox.faults import Faults
from app.sandbox.principal import PRINCIPAL, Principal
from app.sandbox.ratelimit import RateLimiter, limited_body
from app.sandbox.state import SandboxState
from app.sandbox.stats import CallStats

log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"
UNMATCHED = "(unmatched route)"
# Discord serves the gateway URL without a token; the OAuth2 endpoints authenticate the client
# (or nobody, for the browser's authorize page) themselves.
_PUBLIC_ROUTES = {"GET /gateway", "GET /oauth2/authorize", "POST /oauth2/token", "POST /oauth2/token/revoke"}
# An interaction's routes (app.sandbox.interactions): the token in the path authorizes the call,
# with or without the bot's Authorization (the spec's security is [{}, {"BotToken": []}]), and
# Discord leaves them out of the bot's global rate limit.
_INTERACTION_ROUTES = {
    "POST /interactions/{interaction_id}/{interaction_token}/callback",
    "POST /webhooks/{application_id}/{interaction_token}",
    "GET /webhooks/{application_id}/{interaction_token}/messages/@original",
    "PATCH /webhooks/{application_id}/{interaction_token}/messages/@original",
}
# The routes a user's OAuth2 Bearer token may call; every other route is the bot's alone.
_BEARER_ROUTES = {"GET /users/@me", "GET /users/@me/guilds"}
# Discord's major parameters; a webhook's token is one, and an interaction's token is its webhook's.
_MAJOR_PARAMETERS = ("channel_id", "guild_id", "interaction_token")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
B = TypeVar("B", bound=BaseModel)

STATE = web.AppKey("state", SandboxState)
STATS = web.AppKey("stats", CallStats)
FAULTS = web.AppKey("faults", Faults)
LIMITER = web.AppKey("limiter", RateLimiter)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly "application/json": discord.py only decodes bodies whose type is that string.
    return web.Response(
        body=json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode(),
        status=status,
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


def error_response(error: DiscordError, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(error.body(), error.status, headers)


def route_of(request: web.Request) -> str:
    """``"GET /guilds/{guild_id}/roles"``: the method and route template a call matched."""
    resource = request.match_info.route.resource
    if resource is None:
        return f"{request.method} {UNMATCHED}"
    return f"{request.method} {resource.canonical.removeprefix(API_PREFIX)}"


# -- middlewares, outermost first ------------------------------------------------------------


@web.middleware
async def count_and_answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every call and its answer's status, and answer every failure the way Discord
    does; never crash."""
    method, _, route = route_of(request).partition(" ")
    stats = request.app[STATS]
    stats.count(method, route)
    response = await _answer(request, handler)
    stats.answered(response.status)
    return response


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DiscordError as error:
        return error_response(error)
    except web.HTTPMethodNotAllowed:
        return error_response(errors.method_not_allowed())
    except web.HTTPNotFound:
        return error_response(errors.not_found())
    except Exception:
        log.exception("Sandbox error while answering %s %s", request.method, request.path)
        return json_response({"message": "500: Internal Server Error", "code": 0}, 500)


def _principal(request: web.Request, route: str) -> Principal | None:
    state = request.app[STATE]
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if (
        scheme == "Bot"
        and credentials
        and hmac.compare_digest(credentials.encode(), state.bot.token.encode())
    ):
        return Principal(state.bot.id, state.bot.token)
    # RFC 7235: the scheme name is case-insensitive.
    if scheme.lower() == "bearer" and credentials and route in _BEARER_ROUTES:
        pair = state.oauth.access(credentials)
        if pair is not None:
            user_id = pair.grant.user_id
            return Principal(user_id, f"bearer-user:{user_id}", frozenset(pair.scopes))
    return None


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = route_of(request)
    principal = _principal(request, route)
    if principal is not None:
        request[PRINCIPAL] = principal
    elif route not in _PUBLIC_ROUTES and route not in _INTERACTION_ROUTES:
        raise errors.unauthorized()
    return await handler(request)


@web.middleware
async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    method, _, route = route_of(request).partition(" ")
    fault = request.app[FAULTS].take(method, route)
    if fault is None:
        return await handler(request)
    if fault.latency_ms:
        await asyncio.sleep(fault.latency_ms / 1000)
    if fault.status is None:
        return await handler(request)
    if fault.status == 429:
        headers = {"Retry-After": str(max(1, round(fault.retry_after))), "Via": "1.1 google"}
        if fault.is_global:
            headers.update({"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"})
        else:
            headers["X-RateLimit-Scope"] = "user"
        return json_response(limited_body(fault.retry_after, is_global=fault.is_global), 429, headers)
    reason = {
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }
    return json_response({"message": f"{fault.status}: {reason[fault.status]}", "code": 0}, fault.status)


@web.middleware
async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = route_of(request)
    major = ":".join(request.match_info.get(name, "") for name in _MAJOR_PARAMETERS)
    principal = request.get(PRINCIPAL)
    key = "" if principal is None else principal.rate_key
    verdict = request.app[LIMITER].check(key, route, major, global_limit=route not in _INTERACTION_ROUTES)
    if not verdict.allowed:
        body = limited_body(verdict.retry_after, is_global=verdict.is_global)
        return json_response(body, 429, verdict.headers)
    try:
        response = await handler(request)
    except DiscordError as error:
        return error_response(error, verdict.headers)
    response.headers.update(verdict.headers)
    return response


# -- helpers -----------------------------------------------------------------------------------


def snowflake_param(request: web.Request, name: str) -> int:
    value = request.match_info[name]
    parsed = parse_snowflake(value)
    if parsed is None:
        raise errors.field_error((name,), "NUMBER_TYPE_COERCE", f'Value "{value}" is not snowflake.')
    return parsed


async def read_json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError as error:
        raise errors.invalid_json() from error


async def read_body(request: web.Request, model: type[B]) -> B:
    document = await read_json(request)
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise errors.from_validation_error(error) from error


_POSITIONS = TypeAdapter(list[RolePosition])


# -- handlers ----------------------------------------------------------------------------------

routes = web.RouteTableDef()


@routes.delete("/users/@me/guilds/{guild_id}")
async def leave_guild(request: web.Request) -> web.Response:
    request.app[STATE].leave_guild(snowflake_param(request, "guild_id"))
    return web.Response(status=204)


@routes.get("/oauth2/applications/@me")
async def get_current_application(request: web.Request) -> web.Response:
    state = request.app[STATE]
    owner = next((user for user in state.users.values() if not user.bot), state.bot)
    return json_response(shapes.application_json(state.application, state.bot, owner))


def gateway_url(request: web.Request) -> str:
    scheme = "wss" if request.secure else "ws"
    return f"{scheme}://{request.host}/gateway"


@routes.get("/gateway")
async def get_gateway(request: web.Request) -> web.Response:
    return json_response({"url": gateway_url(request)})


@routes.get("/gateway/bot")
async def get_gateway_bot(request: web.Request) -> web.Response:
    state = request.app[STATE]
    limit = {
        "total": 1000,
        "remaining": 999,
        "reset_after": 14_400_000,
        "max_concurrency": state.max_concurrency,
    }
    shards = state.shards
    return json_response({"url": gateway_url(request), "shards": shards, "session_start_limit": limit})


@routes.get("/guilds/{guild_id}")
async def get_guild(request: web.Request) -> web.Response:
    state = request.app[STATE]
    guild = state.guild(snowflake_param(request, "guild_id"))
    data = shapes.guild_json(guild.guild, guild.sorted_roles())
    if request.query.get("with_counts", "").lower() == "true":
        data["approximate_member_count"] = len(guild.members)
        data["approximate_presence_count"] = 0
    return json_response(data)


@routes.get("/guilds/{guild_id}/roles")
async def list_roles(request: web.Request) -> web.Response:
    guild = request.app[STATE].guild(snowflake_param(request, "guild_id"))
    return json_response([shapes.role_json(role) for role in guild.sorted_roles()])


@routes.post("/guilds/{guild_id}/roles")
async def create_role(request: web.Request) -> web.Response:
    body = await read_body(request, RoleFields)
    role = request.app[STATE].create_role(snowflake_param(request, "guild_id"), body)
    return json_response(shapes.role_json(role))


@routes.patch("/guilds/{guild_id}/roles")
async def move_roles(request: web.Request) -> web.Response:
    document = await read_json(request)
    try:
        moves = _POSITIONS.validate_python(document, strict=True)
    except ValidationError as error:
        raise errors.from_validation_error(error) from error
    roles = request.app[STATE].move_roles(snowflake_param(request, "guild_id"), moves)
    return json_response([shapes.role_json(role) for role in roles])


@routes.get("/guilds/{guild_id}/roles/{role_id}")
async def get_role(request: web.Request) -> web.Response:
    state = request.app[STATE]
    guild = state.guild(snowflake_param(request, "guild_id"))
    return json_response(shapes.role_json(state.role(guild, snowflake_param(request, "role_id"))))


@routes.patch("/guilds/{guild_id}/roles/{role_id}")
async def update_role(request: web.Request) -> web.Response:
    body = await read_body(request, RoleFields)
    state = request.app[STATE]
    role = state.update_role(snowflake_param(request, "guild_id"), snowflake_param(request, "role_id"), body)
    return json_response(shapes.role_json(role))


@routes.delete("/guilds/{guild_id}/roles/{role_id}")
async def delete_role(request: web.Request) -> web.Response:
    request.app[STATE].delete_role(snowflake_param(request, "guild_id"), snowflake_param(request, "role_id"))
    return web.Response(status=204)


@routes.get("/guilds/{guild_id}/channels")
async def list_channels(request: web.Request) -> web.Response:
    guild = request.app[STATE].guild(snowflake_param(request, "guild_id"))
    ordered = sorted(guild.channels.values(), key=lambda channel: (channel.position, channel.id))
    return json_response([shapes.channel_json(channel, guild.id) for channel in ordered])


@routes.get("/channels/{channel_id}")
async def get_channel(request: web.Request) -> web.Response:
    guild, channel = request.app[STATE].channel(snowflake_param(request, "channel_id"))
    return json_response(shapes.channel_json(channel, guild.id))


@routes.patch("/channels/{channel_id}")
async def update_channel(request: web.Request) -> web.Response:
    body = await read_body(request, ChannelFields)
    guild, channel = request.app[STATE].update_channel(snowflake_param(request, "channel_id"), body)
    return json_response(shapes.channel_json(channel, guild.id))


@routes.delete("/channels/{channel_id}")
async def delete_channel(request: web.Request) -> web.Response:
    guild, channel = request.app[STATE].delete_channel(snowflake_param(request, "channel_id"))
    return json_response(shapes.channel_json(channel, guild.id))


@routes.put("/channels/{channel_id}/permissions/{overwrite_id}")
async def put_overwrite(request: web.Request) -> web.Response:
    body = await read_body(request, OverwritePut)
    target = snowflake_param(request, "overwrite_id")
    overwrite = OverwriteFields(id=target, type=body.type, allow=body.allow, deny=body.deny)
    request.app[STATE].set_overwrite(snowflake_param(request, "channel_id"), target, overwrite)
    return web.Response(status=204)


@routes.delete("/channels/{channel_id}/permissions/{overwrite_id}")
async def delete_overwrite(request: web.Request) -> web.Response:
    target = snowflake_param(request, "overwrite_id")
    request.app[STATE].set_overwrite(snowflake_param(request, "channel_id"), target, None)
    return web.Response(status=204)


@routes.get("/guilds/{guild_id}/members/{user_id}")
async def get_member(request: web.Request) -> web.Response:
    state = request.app[STATE]
    guild = state.guild(snowflake_param(request, "guild_id"))
    member = state.member(guild, snowflake_param(request, "user_id"))
    return json_response(state.member_json(guild, member))


@routes.patch("/guilds/{guild_id}/members/{user_id}")
async def update_member(request: web.Request) -> web.Response:
    body = await read_body(request, MemberFields)
    state = request.app[STATE]
    guild, member = state.update_member(
        snowflake_param(request, "guild_id"), snowflake_param(request, "user_id"), body
    )
    return json_response(state.member_json(guild, member))


async def _change_member_role(request: web.Request, *, add: bool) -> web.Response:
    state = request.app[STATE]
    guild = state.guild(snowflake_param(request, "guild_id"))
    member = state.member(guild, snowflake_param(request, "user_id"))
    role = state.role(guild, snowflake_param(request, "role_id"))
    roles = [r for r in member.roles if r != role.id] + ([role.id] if add else [])
    state.update_member(guild.id, member.user_id, MemberFields(roles=roles))
    return web.Response(status=204)


@routes.put("/guilds/{guild_id}/members/{user_id}/roles/{role_id}")
async def add_member_role(request: web.Request) -> web.Response:
    return await _change_member_role(request, add=True)


@routes.delete("/guilds/{guild_id}/members/{user_id}/roles/{role_id}")
async def remove_member_role(request: web.Request) -> web.Response:
    return await _change_member_role(request, add=False)


def create_rest_app(
    state: SandboxState,
    stats: CallStats,
    faults: Faults,
    limiter: RateLimiter,
    extra_routes: Iterable[web.RouteTableDef] = (),
) -> web.Application:
    """The REST app; ``extra_routes`` are route tables of modules that build on this one
    (``app.sandbox.users``, ``app.sandbox.messages``, ``app.sandbox.oauth``), which this module
    cannot import."""
    app = web.Application(middlewares=[count_and_answer, authenticate, inject_faults, rate_limit])
    app[STATE] = state
    app[STATS] = stats
    app[FAULTS] = faults
    app[LIMITER] = limiter
    app.add_routes(routes)
    for table in extra_routes:
        app.add_routes(table)
    return app
