"""The control API under ``/_sandbox/`` that tests, benchmarks and demos use to steer the sandbox."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from app.discord.snowflake import parse_snowflake
from app.sandbox import interactions, messages, oauth, shapes, users
from app.sandbox.bodies import RoleFields
from app.sandbox.errors import DiscordError
from app.sandbox.faults import FaultRule
from app.sandbox.fixture import Snowflake, User
from app.sandbox.gateway import Gateway
from app.sandbox.oauth_store import OAuthConfig
from app.sandbox.ratelimit import RateLimitConfig
from app.sandbox.rest import FAULTS, LIMITER, STATE, STATS, json_response, routes
from app.sandbox.state import SandboxState

GATEWAY = web.AppKey("gateway", Gateway)

control = web.RouteTableDef()


# Route tables of the REST API beyond app/sandbox/rest.py's own.
EXTRA_API_ROUTES = (users.routes, messages.routes, interactions.routes, oauth.api_routes)


def known_routes() -> set[str]:
    tables = (routes, *EXTRA_API_ROUTES)
    return {
        definition.path for table in tables for definition in table if isinstance(definition, web.RouteDef)
    }


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
    # The interactions' counts (GET /_sandbox/interactions/stats) start again with the calls'.
    request.app[STATE].interactions.reset_stats()
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


# -- OAuth2 ------------------------------------------------------------------------------------


def _user(state: SandboxState, value: Any) -> User | str:
    """The fixture user a control body names, or a sentence saying why it names none."""
    # Ids are strings as Discord sends them; a JSON number is taken too, for hand-written calls.
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    user_id = parse_snowflake(text) if isinstance(text, str) else None
    user = None if user_id is None else state.users.get(user_id)
    if user is None:
        people = ", ".join(f"{u.id} ({u.username})" for u in state.users.values() if not u.bot)
        return f"user_id {value!r} is not a fixture user; use one of {people}."
    if user.bot:
        return "The bot user cannot log in with OAuth2; choose a person."
    return user


def _approver(state: SandboxState) -> dict[str, Any]:
    approver = state.oauth.approver
    return {"user_id": None if approver is None else str(approver)}


@control.get("/_sandbox/oauth2/config")
async def get_oauth_config(request: web.Request) -> web.Response:
    return json_response(request.app[STATE].oauth.config.model_dump())


@control.patch("/_sandbox/oauth2/config")
async def set_oauth_config(request: web.Request) -> web.Response:
    store = request.app[STATE].oauth
    document = await _document(request)
    if not isinstance(document, dict):
        return _problem(400, "Send a JSON object with access_token_ttl and/or code_ttl in seconds.")
    try:
        store.config = OAuthConfig.model_validate({**store.config.model_dump(), **document})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return _problem(400, f"Not an OAuth2 setting: {problems}.")
    return json_response(store.config.model_dump())


@control.get("/_sandbox/oauth2/approver")
async def get_approver(request: web.Request) -> web.Response:
    return json_response(_approver(request.app[STATE]))


@control.put("/_sandbox/oauth2/approver")
async def set_approver(request: web.Request) -> web.Response:
    state = request.app[STATE]
    document = await _document(request)
    if not isinstance(document, dict) or "user_id" not in document:
        return _problem(
            400, 'Send {"user_id": "<id>"} to choose who approves, or {"user_id": null} to clear.'
        )
    if document["user_id"] is None:
        state.oauth.approver = None
    else:
        user = _user(state, document["user_id"])
        if isinstance(user, str):
            return _problem(400, user)
        state.oauth.approver = user.id
    return json_response(_approver(state))


@control.post("/_sandbox/oauth2/expire")
async def expire_tokens(request: web.Request) -> web.Response:
    state = request.app[STATE]
    document = await _document(request)
    if not isinstance(document, dict):
        return _problem(400, 'Send {} to expire every access token, or {"user_id": "<id>"} for one user\'s.')
    user_id = None
    if document.get("user_id") is not None:
        user = _user(state, document["user_id"])
        if isinstance(user, str):
            return _problem(400, user)
        user_id = user.id
    return json_response({"expired": state.oauth.expire(user_id)})


# -- members -----------------------------------------------------------------------------------


class MemberPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # None keeps an existing member's roles; a new member then has none.
    roles: list[Snowflake] | None = None


def _path_ids(request: web.Request) -> tuple[int, int] | web.Response:
    guild_id = parse_snowflake(request.match_info["guild_id"])
    user_id = parse_snowflake(request.match_info["user_id"])
    if guild_id is None or user_id is None:
        return _problem(
            400, "The guild id and the user id in the path must be snowflakes (strings of digits)."
        )
    return guild_id, user_id


@control.put("/_sandbox/guilds/{guild_id}/members/{user_id}")
async def put_member(request: web.Request) -> web.Response:
    """A fixture user joins a guild (201), or a member's roles are set (200): as the owner would,
    and dispatched on the gateway (GUILD_MEMBER_ADD / GUILD_MEMBER_UPDATE) in guilds with the bot."""
    state = request.app[STATE]
    ids = _path_ids(request)
    if isinstance(ids, web.Response):
        return ids
    try:
        body = MemberPut.model_validate(await _document(request))
    except ValidationError:
        return _problem(400, 'Send {"roles": ["<role id>", ...]}, or {} to join without roles.')
    try:
        member, created = state.put_member(*ids, body.roles)
    except DiscordError as error:
        return json_response(error.body(), error.status)
    except ValueError as error:
        return _problem(400, str(error))
    guild = state.guilds[ids[0]]
    return json_response(
        {**state.member_json(guild, member), "guild_id": str(guild.id)}, 201 if created else 200
    )


@control.delete("/_sandbox/guilds/{guild_id}/members/{user_id}")
async def delete_member(request: web.Request) -> web.Response:
    """A member leaves a guild (GUILD_MEMBER_REMOVE in guilds with the bot); not its owner or the bot."""
    ids = _path_ids(request)
    if isinstance(ids, web.Response):
        return ids
    try:
        request.app[STATE].remove_member(*ids)
    except DiscordError as error:
        return json_response(error.body(), error.status)
    except ValueError as error:
        return _problem(400, str(error))
    return web.Response(status=204)


# -- channels and messages ---------------------------------------------------------------------


def _snowflakes(request: web.Request, *names: str) -> list[int] | web.Response:
    values = [parse_snowflake(request.match_info[name]) for name in names]
    if any(value is None for value in values):
        wanted = " and ".join(name.removesuffix("_id") + " id" for name in names)
        return _problem(400, f"The {wanted} in the path must be snowflakes (strings of digits).")
    return [value for value in values if value is not None]


@control.get("/_sandbox/channels/{channel_id}/messages")
async def list_messages(request: web.Request) -> web.Response:
    """A channel's kept messages, oldest first, in Discord's message shape: with the mentions
    each resolved (``mention_roles``, ``mentions``, ``mention_everyone``), i.e. who was pinged."""
    ids = _snowflakes(request, "channel_id")
    if isinstance(ids, web.Response):
        return ids
    try:
        guild, kept = messages.channel_messages(request.app[STATE], ids[0])
    except DiscordError as error:
        return json_response(error.body(), error.status)
    return json_response({"guild_id": str(guild.id), "channel_id": str(ids[0]), "messages": kept})


@control.delete("/_sandbox/channels/{channel_id}")
async def delete_channel(request: web.Request) -> web.Response:
    """A moderator deletes a channel with its messages (CHANNEL_DELETE); the answer is the
    channel as it was, as Discord's own DELETE answers."""
    ids = _snowflakes(request, "channel_id")
    if isinstance(ids, web.Response):
        return ids
    try:
        guild, channel = request.app[STATE].delete_channel(ids[0], as_moderator=True)
    except DiscordError as error:
        return json_response(error.body(), error.status)
    return json_response(shapes.channel_json(channel, guild.id))


@control.delete("/_sandbox/channels/{channel_id}/messages/{message_id}")
async def delete_message(request: web.Request) -> web.Response:
    """A moderator deletes any message (MESSAGE_DELETE), whatever the bot may do there."""
    ids = _snowflakes(request, "channel_id", "message_id")
    if isinstance(ids, web.Response):
        return ids
    try:
        messages.delete_message(request.app[STATE], *ids, as_moderator=True)
    except DiscordError as error:
        return json_response(error.body(), error.status)
    return web.Response(status=204)
