"""Messages in guild channels: the REST routes that post, read, edit and delete them as the bot,
with Discord's checks, and what the control API reads and deletes as a moderator.

A message keeps the mentions Discord resolved when it was posted or edited (``mention_roles``,
``mentions``, ``mention_everyone``: who was pinged) and its components. Every change goes out
on the gateway as MESSAGE_CREATE, MESSAGE_UPDATE or MESSAGE_DELETE (GUILD_MESSAGES intent).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import discord
from aiohttp import web

from app.discord import permissions as perms
from app.sandbox import errors, shapes
from app.sandbox.bodies import MessageFields
from app.sandbox.components import checked_components
from app.sandbox.fixture import Channel, Message
from app.sandbox.mentions import Mentions, resolve_mentions
from app.sandbox.rest import STATE, json_response, read_body, snowflake_param
from app.sandbox.state import GUILD_MESSAGES, Dispatch, GuildState, SandboxState

MESSAGES_KEPT_PER_CHANNEL = 1000
TEXT_CHANNEL_TYPES = (0, 5)
# Not among app.discord.permissions' flags, which name only what the product itself checks.
MANAGE_MESSAGES = discord.Permissions(manage_messages=True).value

JSON = dict[str, Any]

routes = web.RouteTableDef()


def message_json(
    state: SandboxState, channel: Channel, message: Message, nonce: str | int | None = None
) -> JSON:
    mentioned = [state.users[user_id] for user_id in message.mention_user_ids if user_id in state.users]
    return shapes.message_json(message, channel.id, state.users[message.author_id], mentioned, nonce)


def dispatch_message(
    state: SandboxState,
    name: str,
    guild: GuildState,
    channel: Channel,
    message: Message,
    nonce: str | int | None = None,
) -> None:
    event = message_json(state, channel, message, nonce)
    event["guild_id"] = str(guild.id)
    author = guild.members.get(message.author_id)
    if author is not None:
        event["member"] = shapes.member_json(author, None, with_user=False)
    state.dispatch(Dispatch(name, event, guild.id, GUILD_MESSAGES))


def _kept(guild: GuildState, channel: Channel, message_id: int) -> Message:
    message = guild.messages.get(channel.id, {}).get(message_id)
    if message is None:
        raise errors.unknown("message")
    return message


def _check_can_send(state: SandboxState, guild: GuildState, channel: Channel) -> int:
    if channel.type not in TEXT_CHANNEL_TYPES:
        raise errors.DiscordError(400, 50008, "Cannot send messages in a non-text channel")
    channel_permissions = guild.channel_permissions_of(state.bot.id, channel)
    if not perms.has(channel_permissions, perms.SEND_MESSAGES):
        raise errors.missing_permissions()
    return channel_permissions


def _validate_allowed_mentions(body: MessageFields) -> None:
    allowed = body.allowed_mentions
    if allowed is None:
        return
    parse = set(allowed.parse or [])
    for kind in ("roles", "users"):
        if kind in parse and getattr(allowed, kind):
            raise errors.field_error(
                ("allowed_mentions", "parse"),
                "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                f'parse:["{kind}"] and {kind}: [ids] are mutually exclusive.',
            )


def _mentions(guild: GuildState, content: str, body: MessageFields, channel_permissions: int) -> Mentions:
    return resolve_mentions(
        content,
        body.allowed_mentions,
        roles=guild.roles,
        member_ids=guild.members,
        guild_id=guild.id,
        author_channel_permissions=channel_permissions,
    )


def _rich(embeds: list[JSON] | None) -> list[JSON]:
    # Discord keeps the embeds apps send as "rich" ones, and says so in every answer.
    return [{**embed, "type": "rich"} for embed in embeds or []]


def _checked_components(body: MessageFields, *, allow_empty: bool = False) -> list[JSON]:
    """The body's components as kept, after Discord's checks of what a new message holds."""
    _validate_allowed_mentions(body)
    components = checked_components(body.components) if body.components else []
    if not body.content and not body.embeds and not components and not allow_empty:
        raise errors.empty_message()
    return components


def _new_message(
    state: SandboxState,
    guild: GuildState,
    channel_permissions: int,
    body: MessageFields,
    components: list[JSON],
    **extra: Any,
) -> Message:
    content = body.content or ""
    mentions = _mentions(guild, content, body, channel_permissions)
    return Message(
        id=state.ids.next(),
        author_id=state.bot.id,
        content=content,
        timestamp=datetime.now(UTC),
        mention_roles=mentions.role_ids,
        mention_user_ids=mentions.user_ids,
        mention_everyone=mentions.everyone,
        embeds=_rich(body.embeds),
        components=components,
        **extra,
    )


def build_message(
    state: SandboxState,
    guild: GuildState,
    channel_permissions: int,
    body: MessageFields,
    *,
    allow_empty: bool = False,
    **extra: Any,
) -> Message:
    """A new message by the bot from a request's fields, checked as Discord checks them, and not
    yet kept anywhere; ``extra`` sets the Message's other fields (flags, webhook_id, ...)."""
    components = _checked_components(body, allow_empty=allow_empty)
    return _new_message(state, guild, channel_permissions, body, components, **extra)


def keep_message(guild: GuildState, channel: Channel, message: Message) -> None:
    kept = guild.messages.setdefault(channel.id, {})
    kept[message.id] = message
    while len(kept) > MESSAGES_KEPT_PER_CHANNEL:
        del kept[next(iter(kept))]


def create_message(state: SandboxState, channel_id: int, body: MessageFields) -> JSON:
    """Post as the bot; with ``enforce_nonce``, a nonce the bot used in this channel within the
    last minutes answers with that message and posts nothing."""
    guild, channel = state.channel(channel_id)
    channel_permissions = _check_can_send(state, guild, channel)
    components = _checked_components(body)
    kept = guild.messages.get(channel.id, {})
    if body.nonce is not None and body.enforce_nonce:
        sent = state.nonces.find(channel.id, state.bot.id, body.nonce)
        # A deleted first message no longer holds its nonce.
        if sent is not None and sent.message_id in kept:
            return message_json(state, channel, kept[sent.message_id], sent.nonce)
    message = _new_message(state, guild, channel_permissions, body, components)
    keep_message(guild, channel, message)
    if body.nonce is not None:
        state.nonces.remember(channel.id, state.bot.id, body.nonce, message.id)
    dispatch_message(state, "MESSAGE_CREATE", guild, channel, message, body.nonce)
    return message_json(state, channel, message, body.nonce)


def edit_message(
    state: SandboxState, guild: GuildState, channel: Channel, message: Message, body: MessageFields
) -> None:
    """Apply an edit's fields to ``message`` (Discord's checks on them); dispatching is the
    caller's business, as an ephemeral message is never dispatched."""
    _validate_allowed_mentions(body)
    content = (body.content or "") if body.given("content") else message.content
    embeds = _rich(body.embeds) if body.given("embeds") else message.embeds
    # Components given replace the message's (and are numbered afresh); null or [] removes them.
    components = (
        (checked_components(body.components) if body.components else [])
        if body.given("components")
        else message.components
    )
    if not content and not embeds and not components:
        raise errors.empty_message()
    mentions = _mentions(guild, content, body, guild.channel_permissions_of(state.bot.id, channel))
    message.content = content
    message.embeds = embeds
    message.components = components
    message.mention_roles = mentions.role_ids
    message.mention_user_ids = mentions.user_ids
    message.mention_everyone = mentions.everyone
    message.edited_timestamp = datetime.now(UTC)


def update_message(state: SandboxState, channel_id: int, message_id: int, body: MessageFields) -> JSON:
    guild, channel = state.channel(channel_id)
    message = _kept(guild, channel, message_id)
    if message.author_id != state.bot.id and any(
        body.given(field) for field in ("content", "embeds", "components")
    ):
        raise errors.not_author()
    edit_message(state, guild, channel, message, body)
    dispatch_message(state, "MESSAGE_UPDATE", guild, channel, message)
    return message_json(state, channel, message)


def delete_message(
    state: SandboxState, channel_id: int, message_id: int, *, as_moderator: bool = False
) -> None:
    """Delete as the bot (its own messages; others' with MANAGE_MESSAGES in the channel), or
    ``as_moderator`` (the control API: nothing is asked of the bot)."""
    guild, channel = state.any_channel(channel_id) if as_moderator else state.channel(channel_id)
    message = _kept(guild, channel, message_id)
    if (
        not as_moderator
        and message.author_id != state.bot.id
        and not perms.has(guild.channel_permissions_of(state.bot.id, channel), MANAGE_MESSAGES)
    ):
        raise errors.missing_permissions()
    del guild.messages[channel.id][message.id]
    # Sessions hear only of guilds the bot is in (a moderator may act elsewhere).
    if state.bot.id in guild.members:
        event = {"id": str(message.id), "channel_id": str(channel.id), "guild_id": str(guild.id)}
        state.dispatch(Dispatch("MESSAGE_DELETE", event, guild.id, GUILD_MESSAGES))


def channel_messages(state: SandboxState, channel_id: int) -> tuple[GuildState, list[JSON]]:
    """A channel's kept messages, oldest first, whoever may see the channel (the control API)."""
    guild, channel = state.any_channel(channel_id)
    kept = sorted(guild.messages.get(channel.id, {}).values(), key=lambda message: message.id)
    return guild, [message_json(state, channel, message) for message in kept]


# -- routes ------------------------------------------------------------------------------------


@routes.post("/channels/{channel_id}/messages")
async def post_message(request: web.Request) -> web.Response:
    body = await read_body(request, MessageFields)
    return json_response(create_message(request.app[STATE], snowflake_param(request, "channel_id"), body))


@routes.get("/channels/{channel_id}/messages/{message_id}")
async def get_message(request: web.Request) -> web.Response:
    state = request.app[STATE]
    guild, channel = state.channel(snowflake_param(request, "channel_id"))
    message = _kept(guild, channel, snowflake_param(request, "message_id"))
    return json_response(message_json(state, channel, message))


@routes.patch("/channels/{channel_id}/messages/{message_id}")
async def patch_message(request: web.Request) -> web.Response:
    body = await read_body(request, MessageFields)
    channel_id, message_id = snowflake_param(request, "channel_id"), snowflake_param(request, "message_id")
    return json_response(update_message(request.app[STATE], channel_id, message_id, body))


@routes.delete("/channels/{channel_id}/messages/{message_id}")
async def remove_message(request: web.Request) -> web.Response:
    channel_id, message_id = snowflake_param(request, "channel_id"), snowflake_param(request, "message_id")
    delete_message(request.app[STATE], channel_id, message_id)
    return web.Response(status=204)
