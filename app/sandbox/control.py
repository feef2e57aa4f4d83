"""The control API under ``/_sandbox/`` that tests, benchmarks and demos use to steer the sandbox."""

from __future__ import annotations

import json

from aiohttp import web
from pydantic import ValidationError

from app.sandbox import shapes
from app.sandbox.bodies import RoleFields
from app.sandbox.errors import DiscordError
from app.sandbox.faults import FaultRule
from app.sandbox.gateway import Gateway
from app.sandbox.ratelimit import RateLimitConfig
from app.sandbox.rest import FAULTS, LIMITER, STATE, STATS, json_response, routes

GATEWAY = web.AppKey("gateway", Gateway)

control = web.RouteTableDef()


def known_routes() -> set[str]:
    return {definition.path for definition in routes if isinstance(definition, web.RouteDef)}


def _problem(status: int, message: str) -> web.Response:
    return json_response({"message": message}, status)


async def _document(request: web.Request) -> object:
    try:
        return json.loads(await request.read() or b"{}")
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"message": "The request body is not valid JSON."}),
            content_type="application/json",
        ) from None


@control.get("/_sandbox/fixture")
async def get_fixture(request: web.Request) -> web.Response:
    return json_response(request.app[STATE].to_fixture().model_dump(mode="json"))


@control.get("/_sandbox/stats")
async def get_stats(request: web.Request) -> web.Response:
    return json_response(request.app[STATS].snapshot())


@control.post("/_sandbox/stats/reset")
async def reset_stats(request: web.Request) -> web.Response:
    request.app[STATS].reset()
    return json_response(request.app[STATS].snapshot())


@control.post("/_sandbox/gateway/reconnect")
async def reconnect(request: web.Request) -> web.Response:
    return json_response({"sessions": await request.app[GATEWAY].reconnect_all()})


@control.post("/_sandbox/gateway/invalidate-session")
async def invalidate_session(request: web.Request) -> web.Response:
    return json_response({"sessions": await request.app[GATEWAY].invalidate_all()})


@control.get("/_sandbox/gateway/sessions")
async def list_sessions(request: web.Request) -> web.Response:
    return json_response({"sessions": request.app[GATEWAY].describe()})


@control.patch("/_sandbox/guilds/{guild_id}/roles/{role_id}")
async def change_role(request: web.Request) -> web.Response:
    """Edit a role as the guild's owner would: no permission checks, not counted in the stats,
    dispatched on the gateway like any change (for benchmarks and demos)."""
    state = request.app[STATE]
    try:
        body = RoleFields.model_validate(await _document(request))
        guild_id, role_id = int(request.match_info["guild_id"]), int(request.match_info["role_id"])
        role = state.update_role(guild_id, role_id, body, as_owner=True)
    except ValidationError as error:
        return _problem(400, f"Not a role change: {error.errors()[0]['msg']}.")
    except (ValueError, DiscordError) as error:
        return _problem(404 if isinstance(error, DiscordError) and error.status == 404 else 400, str(error))
    return json_response(shapes.role_json(role))


@control.get("/_sandbox/faults")
async def list_faults(request: web.Request) -> web.Response:
    active = request.app[FAULTS].active()
    return json_response({"faults": [rule.model_dump(by_alias=True) for rule in active]})


@control.post("/_sandbox/faults")
async def add_fault(request: web.Request) -> web.Response:
    try:
        rule = FaultRule.model_validate(await _document(request))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors())
        return _problem(400, f"Not a fault: {problems}.")
    known = known_routes()
    if rule.route != "*" and rule.route not in known:
        return _problem(400, f'Unknown route {rule.route!r}; use one of {sorted(known)} or "*".')
    return json_response(request.app[FAULTS].add(rule).model_dump(by_alias=True), 201)


@control.delete("/_sandbox/faults")
async def clear_faults(request: web.Request) -> web.Response:
    request.app[FAULTS].clear()
    return web.Response(status=204)


@control.get("/_sandbox/ratelimits")
async def get_rate_limits(request: web.Request) -> web.Response:
    return json_response(request.app[LIMITER].config.model_dump())


@control.post("/_sandbox/ratelimits")
async def set_rate_limits(request: web.Request) -> web.Response:
    limiter = request.app[LIMITER]
    document = await _document(request)
    if not isinstance(document, dict):
        return _problem(400, "Send a JSON object with the limits to change.")
    try:
        config = RateLimitConfig.model_validate({**limiter.config.model_dump(), **document})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return _problem(400, f"Not a rate limit setting: {problems}.")
    limiter.configure(config)
    return json_response(config.model_dump())
