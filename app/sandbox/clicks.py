"""A user clicking a message's button, through the control API: who may click, the
INTERACTION_CREATE the bot receives, and what the user then sees.

``POST /_sandbox/interactions/click`` checks the click as Discord would let it happen (a fixture
person, a member of the guild who can see the channel, an enabled button of the bot's message),
dispatches INTERACTION_CREATE to the guild's shard (it needs no intent) and waits for the bot's
initial response (``app.sandbox.interactions``). ``/_sandbox/interactions/config`` holds the
response window and the token's lifetime; ``/_sandbox/interactions/stats`` counts what bots did
with their interactions; ``/_sandbox/interactions/{interaction_id}`` shows one again later (its
follow-ups included).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.discord import permissions as perms
from app.discord.snowflake import parse_snowflake
from app.sandbox import shapes
from app.sandbox.errors import DiscordError
from app.sandbox.fixture import Channel, Message, Snowflake, User
from app.sandbox.interaction_store import Interaction, InteractionConfig, new_token
from app.sandbox.interactions import MESSAGE_COMPONENT, original_message
from app.sandbox.messages import message_json
from app.sandbox.rest import STATE, json_response
from app.sandbox.state import NO_INTENT, Dispatch, GuildState, SandboxState

BUTTON = 2
GUILD_LOCALE = "en-US"
# What Discord lets a user in a guild without boosts upload: 10 MiB.
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024

JSON = dict[str, Any]

control = web.RouteTableDef()


class Click(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Snowflake
    channel_id: Snowflake
    message_id: Snowflake
    custom_id: str = Field(min_length=1, max_length=100)
    wait: float = Field(default=3.5, ge=0, le=15, description="Seconds to wait for the initial response.")


class Refused(Exception):
    """A click Discord would not let happen: the status to answer, and why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _problem(status: int, message: str) -> web.Response:
    return json_response({"message": message}, status)


async def _document(request: web.Request) -> Any:
    try:
        return json.loads(await request.read() or b"{}")
    except ValueError:
        return None


def _problems(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors())


def _button(message: Message, custom_id: str) -> JSON | None:
    buttons: list[JSON] = [component for row in message.components for component in row.get("components", [])]
    return next((b for b in buttons if b.get("type") == BUTTON and b.get("custom_id") == custom_id), None)


def _who(user: User) -> str:
    return f"{user.username} ({user.id})"


def _checked_click(state: SandboxState, click: Click) -> tuple[GuildState, Channel, Message, User, JSON]:
    """What the click is on, or Refused saying why Discord would not let it happen."""
    user = state.users.get(click.user_id)
    if user is None:
        people = ", ".join(_who(u) for u in state.users.values() if not u.bot)
        raise Refused(404, f"user_id {click.user_id} is not a fixture user; use one of {people}.")
    if user.bot:
        raise Refused(400, "The bot cannot click buttons; choose a person.")
    guild_id = state.channel_guild.get(click.channel_id)
    if guild_id is None:
        raise Refused(404, f"Unknown channel {click.channel_id}.")
    guild = state.guilds[guild_id]
    channel = guild.channels[click.channel_id]
    if user.id not in guild.members:
        raise Refused(403, f"User {_who(user)} is not a member of guild {guild.guild.name!r} ({guild.id}).")
    if not perms.has(guild.channel_permissions_of(user.id, channel), perms.VIEW_CHANNEL):
        raise Refused(
            403, f"User {_who(user)} cannot see #{channel.name} ({channel.id}): no VIEW_CHANNEL there."
        )
    message = guild.messages.get(channel.id, {}).get(click.message_id)
    if message is None:
        raise Refused(404, f"Unknown message {click.message_id} in #{channel.name} ({channel.id}).")
    button = _button(message, click.custom_id)
    if button is None:
        raise Refused(404, f"Message {message.id} has no button with custom_id {click.custom_id!r}.")
    if button.get("disabled"):
        raise Refused(409, f"The button {click.custom_id!r} is disabled: Discord lets nobody click it.")
    if message.author_id != state.bot.id:
        raise Refused(
            409, f"Message {message.id} is not the bot's: its buttons belong to another application."
        )
    if state.bot.id not in guild.members:
        raise Refused(409, f"The bot is not in guild {guild.id}: no one would receive the click.")
    return guild, channel, message, user, button


def interaction_create(
    state: SandboxState,
    interaction: Interaction,
    guild: GuildState,
    channel: Channel,
    message: Message,
    user: User,
    button: JSON,
) -> JSON:
    """INTERACTION_CREATE for a click on ``button``, as Discord sends it to a guild-installed app."""
    permissions = guild.channel_permissions_of(user.id, channel)
    return {
        "id": str(interaction.id),
        "application_id": str(state.application.id),
        "type": MESSAGE_COMPONENT,
        "data": {"custom_id": button["custom_id"], "component_type": BUTTON, "id": button["id"]},
        "guild": {"id": str(guild.id), "locale": GUILD_LOCALE, "features": []},
        "guild_id": str(guild.id),
        "channel": {**shapes.channel_json(channel, guild.id), "permissions": str(permissions)},
        "channel_id": str(channel.id),
        "member": {**shapes.member_json(guild.members[user.id], user), "permissions": str(permissions)},
        "token": interaction.token,
        "version": 1,
        "message": message_json(state, channel, message),
        "app_permissions": str(guild.channel_permissions_of(state.bot.id, channel)),
        "locale": "en-US",
        "guild_locale": GUILD_LOCALE,
        "entitlements": [],
        "authorizing_integration_owners": {"0": str(guild.id)},
        "context": 0,
        "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
    }


def start_click(state: SandboxState, click: Click) -> Interaction:
    """Create the click's interaction and dispatch it; Refused when Discord would not."""
    guild, channel, message, user, button = _checked_click(state, click)
    interaction_id = state.ids.next()
    interaction = Interaction(
        id=interaction_id,
        token=new_token(interaction_id),
        guild_id=guild.id,
        channel_id=channel.id,
        message_id=message.id,
        custom_id=click.custom_id,
        user_id=user.id,
        created_at=state.interactions.clock(),
    )
    interaction.payload = interaction_create(state, interaction, guild, channel, message, user, button)
    state.interactions.add(interaction)
    state.dispatch(Dispatch("INTERACTION_CREATE", interaction.payload, guild.id, NO_INTENT))
    return interaction


def seen(state: SandboxState, interaction: Interaction) -> JSON:
    """What the user who clicked sees: the bot's answer, the clicked message as it is now, and
    the messages the interaction posted (ephemeral ones included); null for what is gone."""
    guild_id = state.channel_guild.get(interaction.channel_id)
    guild = None if guild_id is None else state.guilds[guild_id]
    channel = None if guild is None else guild.channels[interaction.channel_id]

    def shown(message_id: int | None) -> JSON | None:
        if message_id is None or guild is None or channel is None:
            return None
        message = interaction.private.get(message_id) or guild.messages.get(channel.id, {}).get(message_id)
        return None if message is None else message_json(state, channel, message)

    original = None
    if interaction.response is not None and guild is not None and channel is not None:
        try:
            original = message_json(state, channel, original_message(guild, channel, interaction)[0])
        except DiscordError:  # the message is gone
            original = None
    return {
        "interaction_id": str(interaction.id),
        "answered": interaction.is_answered,
        "response": interaction.response,
        "ephemeral": interaction.ephemeral,
        "message": shown(interaction.message_id),
        "original_response": original,
        "followups": [shown(message_id) for message_id in interaction.followup_ids],
    }


@control.post("/_sandbox/interactions/click")
async def click_button(request: web.Request) -> web.Response:
    state = request.app[STATE]
    document = await _document(request)
    try:
        click = Click.model_validate(document)
    except ValidationError as error:
        return _problem(400, f"Not a click: {_problems(error)}.")
    try:
        interaction = start_click(state, click)
    except Refused as refused:
        return _problem(refused.status, refused.reason)
    store = state.interactions
    window = store.window_left(interaction)
    try:
        async with asyncio.timeout(min(click.wait, window)):
            await interaction.answered.wait()
    except TimeoutError:
        # Having waited out the window, the click shows "This interaction failed": a response
        # arriving from now on is late, however the timer and the clock round.
        if click.wait >= window:
            store.close_window(interaction)
    return json_response(seen(state, interaction))


@control.get("/_sandbox/interactions/config")
async def get_config(request: web.Request) -> web.Response:
    return json_response(request.app[STATE].interactions.config.model_dump())


@control.patch("/_sandbox/interactions/config")
async def set_config(request: web.Request) -> web.Response:
    store = request.app[STATE].interactions
    document = await _document(request)
    if not isinstance(document, dict):
        return _problem(400, "Send a JSON object with response_window and/or token_ttl in seconds.")
    try:
        store.config = InteractionConfig.model_validate({**store.config.model_dump(), **document})
    except ValidationError as error:
        return _problem(400, f"Not an interaction setting: {_problems(error)}.")
    return json_response(store.config.model_dump())


@control.get("/_sandbox/interactions/stats")
async def get_stats(request: web.Request) -> web.Response:
    return json_response(request.app[STATE].interactions.snapshot())


@control.get("/_sandbox/interactions/{interaction_id}")
async def get_interaction(request: web.Request) -> web.Response:
    state = request.app[STATE]
    interaction_id = parse_snowflake(request.match_info["interaction_id"])
    interaction = None if interaction_id is None else state.interactions.get(interaction_id)
    if interaction is None:
        return _problem(404, "No such interaction, or its token has expired.")
    return json_response(seen(state, interaction))
