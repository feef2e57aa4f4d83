"""The current user's routes, answered for the bot or for a user's OAuth2 Bearer token."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from app.discord.snowflake import is_digits, parse_snowflake
from app.sandbox import errors, shapes
from app.sandbox.principal import PRINCIPAL
from app.sandbox.rest import STATE, json_response

MAX_GUILDS_PAGE = 200

routes = web.RouteTableDef()


@routes.get("/users/@me")
async def get_current_user(request: web.Request) -> web.Response:
    state = request.app[STATE]
    principal = request[PRINCIPAL]
    if principal.is_bot:
        return json_response(shapes.current_user_json(state.bot))
    # Discord answers a token without the identify scope as it answers no token at all.
    if not principal.allows("identify"):
        raise errors.unauthorized()
    user = state.users[principal.user_id]
    return json_response(shapes.current_user_json(user, with_email=principal.allows("email")))


def _snowflake_query(query: Mapping[str, str], name: str) -> int | None:
    text = query.get(name)
    if text is None:
        return None
    # Discord takes 0 here ("from the start", as clients page with after=0), unlike in paths.
    value = 0 if text == "0" else parse_snowflake(text)
    if value is None:
        raise errors.field_error((name,), "NUMBER_TYPE_COERCE", f'Value "{text}" is not snowflake.')
    return value


def _limit(query: Mapping[str, str]) -> int:
    text = query.get("limit")
    if text is None:
        return MAX_GUILDS_PAGE
    digits = text.removeprefix("-")
    if not is_digits(digits):
        raise errors.field_error(("limit",), "NUMBER_TYPE_COERCE", f'Value "{text}" is not int.')
    limit = int(text)
    if limit < 1:
        raise errors.field_error(
            ("limit",), "NUMBER_TYPE_MIN", "int value should be greater than or equal to 1."
        )
    if limit > MAX_GUILDS_PAGE:
        raise errors.field_error(
            ("limit",), "NUMBER_TYPE_MAX", f"int value should be less than or equal to {MAX_GUILDS_PAGE}."
        )
    return limit


@routes.get("/users/@me/guilds")
async def list_current_user_guilds(request: web.Request) -> web.Response:
    """Every guild the caller is a member of, by id: for a user, also guilds without the bot."""
    state = request.app[STATE]
    principal = request[PRINCIPAL]
    if not principal.allows("guilds"):
        raise errors.missing_access()
    before, after = _snowflake_query(request.query, "before"), _snowflake_query(request.query, "after")
    limit = _limit(request.query)
    with_counts = request.query.get("with_counts", "").lower() == "true"
    user_id = principal.user_id
    guilds = sorted(
        (
            guild
            for guild in state.guilds.values()
            if user_id in guild.members
            and (after is None or guild.id > after)
            and (before is None or guild.id < before)
        ),
        key=lambda guild: guild.id,
    )
    # Paging backwards with only ``before`` yields the guilds just before it, still in id order.
    page = guilds[-limit:] if before is not None and after is None else guilds[:limit]
    return json_response(
        [
            shapes.partial_guild_json(
                guild.guild,
                owner=guild.guild.owner_id == user_id,
                permissions=guild.permissions_of(user_id),
                counts=(len(guild.members), 0) if with_counts else None,
            )
            for guild in page
        ]
    )
