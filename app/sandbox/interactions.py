"""Discord's side of an interaction: the bot's initial response, and the interaction's webhook.

``POST /interactions/{interaction_id}/{interaction_token}/callback`` takes one initial response
within the response window (``app.sandbox.interaction_store``): 4 posts a message (only the user
who clicked sees it with ``flags`` 64), 5 posts a "thinking" message (flags 128) to fill in later,
6 acknowledges, 7 edits the clicked message. Then, while the token lives,
``POST /webhooks/{application_id}/{interaction_token}`` posts follow-ups and
``.../messages/@original`` reads or edits the initial response (for 6 and 7: the clicked message).

Public messages are kept in their channel and dispatched (MESSAGE_CREATE, MESSAGE_UPDATE) like
any other; ephemeral ones are kept on the interaction only, as Discord shows them to one user and
tells no one else. The token authorizes these routes: no bot Authorization is needed
(``app.sandbox.rest`` lets them through, and outside the global rate limit).
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from app.discord.snowflake import parse_snowflake
from app.sandbox import errors, shapes
from app.sandbox.bodies import InteractionCallback, InteractionMessageFields
from app.sandbox.fixture import Channel, Message
from app.sandbox.interaction_store import EPHEMERAL, LOADING, Interaction
from app.sandbox.messages import build_message, dispatch_message, edit_message, keep_message, message_json
from app.sandbox.rest import STATE, json_response, read_body, read_json
from app.sandbox.state import GuildState, SandboxState

MESSAGE_COMPONENT = 3
CHANNEL_MESSAGE_WITH_SOURCE, DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 4, 5
DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE, MODAL, LAUNCH_ACTIVITY = 6, 7, 9, 12
# The callback types Discord takes for a message component's interaction.
COMPONENT_CALLBACK_TYPES = (4, 5, 6, 7, 9, 12)
SUPPRESS_EMBEDS, SUPPRESS_NOTIFICATIONS = 1 << 2, 1 << 12
# The flags an app may set on an interaction's message; Discord drops the others.
MESSAGE_FLAGS = SUPPRESS_EMBEDS | EPHEMERAL | SUPPRESS_NOTIFICATIONS

JSON = dict[str, Any]

routes = web.RouteTableDef()


def interaction_metadata(
    state: SandboxState, interaction: Interaction, original_id: int | None = None
) -> JSON:
    """``MessageComponentInteractionMetadataResponse``: what a message answering a click says of
    it; ``original_id`` (the initial response's message) is for follow-ups."""
    data: JSON = {
        "id": str(interaction.id),
        "type": MESSAGE_COMPONENT,
        "user": shapes.user_json(state.users[interaction.user_id]),
        # A guild install: its owner is the guild (integration type 0).
        "authorizing_integration_owners": {"0": str(interaction.guild_id)},
        "interacted_message_id": str(interaction.message_id),
    }
    if original_id is not None:
        data["original_response_message_id"] = str(original_id)
    return data


def _place(state: SandboxState, interaction: Interaction) -> tuple[GuildState, Channel]:
    """The interaction's guild and channel as they are now: 10003 once the channel is gone."""
    guild, channel = state.any_channel(interaction.channel_id)
    if state.bot.id not in guild.members:
        raise errors.missing_access()
    return guild, channel


def _post(
    state: SandboxState,
    interaction: Interaction,
    body: InteractionMessageFields,
    *,
    flags: int,
    allow_empty: bool = False,
    original_id: int | None = None,
) -> tuple[Channel, Message]:
    """A message through the interaction's webhook: kept only for the user who clicked when
    ephemeral, else kept in the channel and dispatched. Interactions need none of the bot's
    channel permissions to answer; its permissions only decide what its mentions may ping."""
    guild, channel = _place(state, interaction)
    application = state.application.id
    message = build_message(
        state,
        guild,
        guild.channel_permissions_of(state.bot.id, channel),
        body,
        allow_empty=allow_empty,
        flags=flags,
        webhook_id=application,
        application_id=application,
        interaction_metadata=interaction_metadata(state, interaction, original_id),
    )
    if flags & EPHEMERAL:
        interaction.private[message.id] = message
    else:
        keep_message(guild, channel, message)
        dispatch_message(state, "MESSAGE_CREATE", guild, channel, message)
    return channel, message


def _clicked(guild: GuildState, channel: Channel, interaction: Interaction) -> Message:
    message = guild.messages.get(channel.id, {}).get(interaction.message_id)
    if message is None:
        raise errors.unknown("message")
    return message


def _apply(state: SandboxState, interaction: Interaction, body: InteractionCallback) -> JSON:
    """Carry out an initial response; the ``InteractionCallbackResponse`` describing it."""
    data = body.data or InteractionMessageFields()
    described: JSON = {
        "id": str(interaction.id),
        "type": MESSAGE_COMPONENT,
        "channel_id": str(interaction.channel_id),
        "guild_id": str(interaction.guild_id),
    }
    resource: JSON | None = None
    if body.type in (CHANNEL_MESSAGE_WITH_SOURCE, DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE):
        thinking = body.type == DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
        flags = (data.flags or 0) & (EPHEMERAL if thinking else MESSAGE_FLAGS)
        channel, message = _post(
            state,
            interaction,
            InteractionMessageFields() if thinking else data,
            flags=flags | (LOADING if thinking else 0),
            allow_empty=thinking,
        )
        interaction.original_id = message.id
        interaction.ephemeral = bool(flags & EPHEMERAL)
        described.update(
            response_message_id=str(message.id),
            response_message_loading=thinking,
            response_message_ephemeral=interaction.ephemeral,
        )
        if not thinking:
            resource = {"type": body.type, "message": message_json(state, channel, message)}
    elif body.type == UPDATE_MESSAGE:
        guild, channel = _place(state, interaction)
        message = _clicked(guild, channel, interaction)
        # Only the bot's messages can be clicked (app.sandbox.clicks), so no author check.
        edit_message(state, guild, channel, message, data)
        dispatch_message(state, "MESSAGE_UPDATE", guild, channel, message)
        described.update(
            response_message_id=str(message.id),
            response_message_loading=False,
            response_message_ephemeral=False,
        )
        resource = {"type": body.type, "message": message_json(state, channel, message)}
    answer: JSON = {"interaction": described}
    if resource is not None:
        answer["resource"] = resource
    return answer


def _check_type(kind: int) -> None:
    if kind not in COMPONENT_CALLBACK_TYPES:
        # The choices Discord takes for a component's interaction, in its words for choices.
        choices = ", ".join(map(str, COMPONENT_CALLBACK_TYPES))
        raise errors.field_error(("type",), "BASE_TYPE_CHOICES", f"Value must be one of {{{choices}}}.")
    if kind in (MODAL, LAUNCH_ACTIVITY):
        # Valid on Discord, but the sandbox has no modals or activities to show.
        raise errors.DiscordError(
            400, 0, f"The sandbox does not model callback type {kind} (modals and activities)."
        )


def _query_flag(request: web.Request, name: str) -> bool:
    text = request.query.get(name)
    if text is None:
        return False
    # discord.py sends "1"; Discord reads booleans in queries as "true"/"false" or 1/0.
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise errors.field_error((name,), "BASE_TYPE_BOOLEAN", "Must be either true or false.")


@routes.post("/interactions/{interaction_id}/{interaction_token}/callback")
async def create_interaction_response(request: web.Request) -> web.Response:
    state = request.app[STATE]
    store = state.interactions
    with_response = _query_flag(request, "with_response")
    # Read before the checks: from them to the accepted answer nothing awaits, so two answers
    # racing each other cannot both be taken.
    document = await read_json(request)
    interaction_id = parse_snowflake(request.match_info["interaction_id"])
    interaction = None if interaction_id is None else store.get(interaction_id)
    token = request.match_info["interaction_token"]
    if interaction is None or not hmac.compare_digest(interaction.token.encode(), token.encode()):
        raise errors.unknown_interaction()
    if interaction.is_answered:
        store.stats.duplicate_responses += 1
        raise errors.already_acknowledged()
    if store.window_left(interaction) <= 0:
        store.close_window(interaction)
        store.stats.late_responses += 1
        raise errors.unknown_interaction()
    try:
        body = InteractionCallback.model_validate(document)
    except ValidationError as error:
        raise errors.from_validation_error(error) from error
    _check_type(body.type)
    # A refused response (an empty message, a bad component) leaves the interaction unanswered,
    # so the bot may try again within the window.
    answer = _apply(state, interaction, body)
    data = {} if body.data is None else body.data.model_dump(mode="json", exclude_unset=True)
    store.accept_response(interaction, {"type": body.type, "data": data})
    if with_response:
        return json_response(answer)
    return web.Response(status=204)


# -- the interaction's webhook -------------------------------------------------------------------


def _webhook_interaction(request: web.Request) -> Interaction:
    """The interaction whose token is in the path, while its token lives and once it is
    answered: Discord makes the webhook with the initial response."""
    state = request.app[STATE]
    if parse_snowflake(request.match_info["application_id"]) != state.application.id:
        raise errors.unknown_webhook()
    interaction = state.interactions.by_token(request.match_info["interaction_token"])
    if interaction is None or not state.interactions.token_alive(interaction):
        raise errors.invalid_webhook_token()
    if not interaction.is_answered:
        raise errors.unknown_webhook()
    return interaction


def original_message(guild: GuildState, channel: Channel, interaction: Interaction) -> tuple[Message, bool]:
    """The initial response's message, and whether it is ephemeral: the one it posted (4, 5),
    or the clicked message (6, 7)."""
    assert interaction.response is not None
    if interaction.response["type"] in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE):
        return _clicked(guild, channel, interaction), False
    assert interaction.original_id is not None
    private = interaction.private.get(interaction.original_id)
    if private is not None:
        return private, True
    message = guild.messages.get(channel.id, {}).get(interaction.original_id)
    if message is None:
        raise errors.unknown("message")
    return message, False


@routes.post("/webhooks/{application_id}/{interaction_token}")
async def create_followup_message(request: web.Request) -> web.Response:
    """A follow-up; Discord always answers with the message (``wait`` is always true here)."""
    state = request.app[STATE]
    interaction = _webhook_interaction(request)
    body = await read_body(request, InteractionMessageFields)
    flags = (body.flags or 0) & MESSAGE_FLAGS
    channel, message = _post(state, interaction, body, flags=flags, original_id=interaction.original_id)
    interaction.followup_ids.append(message.id)
    return json_response(message_json(state, channel, message))


@routes.get("/webhooks/{application_id}/{interaction_token}/messages/@original")
async def get_original_response(request: web.Request) -> web.Response:
    state = request.app[STATE]
    interaction = _webhook_interaction(request)
    guild, channel = _place(state, interaction)
    message, _ = original_message(guild, channel, interaction)
    return json_response(message_json(state, channel, message))


@routes.patch("/webhooks/{application_id}/{interaction_token}/messages/@original")
async def edit_original_response(request: web.Request) -> web.Response:
    state = request.app[STATE]
    interaction = _webhook_interaction(request)
    body = await read_body(request, InteractionMessageFields)
    guild, channel = _place(state, interaction)
    message, private = original_message(guild, channel, interaction)
    edit_message(state, guild, channel, message, body)
    # The "thinking" message of a deferred response becomes the answer.
    message.flags &= ~LOADING
    if not private:
        dispatch_message(state, "MESSAGE_UPDATE", guild, channel, message)
    return json_response(message_json(state, channel, message))
