"""Request bodies the sandbox accepts, validated as Discord validates them (errors become 50035)."""

from __future__ import annotations

from collections.abc import Sized
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator

from app.sandbox.errors import form_problem
from app.sandbox.fixture import Bits, Color, Snowflake

S = TypeVar("S", bound=Sized)
INT64 = 2**63
URL_SCHEMES = ("http", "https", "discord")


class Body(BaseModel):
    # Discord does not turn "true" into true or "5" into 5; neither do we.
    model_config = ConfigDict(strict=True, extra="ignore")

    def given(self, field: str) -> bool:
        return field in self.model_fields_set


class RoleColors(Body):
    primary_color: Color
    secondary_color: Color | None = None
    tertiary_color: Color | None = None


class RoleFields(Body):
    name: Annotated[str, Field(max_length=100)] | None = None
    permissions: Bits | None = None
    color: Color | None = None
    colors: RoleColors | None = None
    hoist: bool | None = None
    icon: str | None = None
    unicode_emoji: str | None = None
    mentionable: bool | None = None


class RolePosition(Body):
    id: Snowflake
    position: Annotated[int, Field(ge=0)] | None = None


class OverwriteFields(Body):
    id: Snowflake
    type: Literal[0, 1]
    allow: Bits | None = None
    deny: Bits | None = None


class OverwritePut(Body):
    """``PUT /channels/{channel_id}/permissions/{overwrite_id}``: the id comes from the path."""

    type: Literal[0, 1]
    allow: Bits | None = None
    deny: Bits | None = None


class ChannelFields(Body):
    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    topic: Annotated[str, Field(max_length=1024)] | None = None
    position: int | None = None
    nsfw: bool | None = None
    parent_id: Snowflake | None = None
    permission_overwrites: Annotated[list[OverwriteFields], Field(max_length=100)] | None = None


class MemberFields(Body):
    nick: Annotated[str, Field(max_length=32)] | None = None
    roles: Annotated[list[Snowflake], Field(max_length=250)] | None = None


class AllowedMentions(Body):
    parse: list[Literal["roles", "users", "everyone"]] | None = None
    roles: Annotated[list[Snowflake], Field(max_length=100)] | None = None
    users: Annotated[list[Snowflake], Field(max_length=100)] | None = None
    replied_user: bool | None = None


def _length(low: int, high: int) -> AfterValidator:
    """Discord's length limit for a string or a list, refused in Discord's words."""

    def check(value: S) -> S:
        if low <= len(value) <= high:
            return value
        if low == 0:
            raise form_problem("BASE_TYPE_MAX_LENGTH", f"Must be {high} or fewer in length.")
        raise form_problem("BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")

    return AfterValidator(check)


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in URL_SCHEMES:
        allowed = ", ".join(repr(scheme) for scheme in URL_SCHEMES)
        raise form_problem(
            "URL_TYPE_INVALID_SCHEME",
            f'Scheme "{parts.scheme}" is not supported. Scheme must be one of ({allowed}).',
        )
    if not parts.netloc:
        raise form_problem("URL_TYPE_INVALID_URL", "Not a well formed URL.")
    return value


def _nonce(value: Any) -> str | int:
    # A JSON true is no integer to Discord, though it is one to Python.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise form_problem("NONCE_TYPE_INVALID_TYPE", "This field must be a string or integer.")
    if isinstance(value, str) and len(value) > 25:
        raise form_problem("NONCE_TYPE_TOO_LONG", "Must be 25 or fewer characters long.")
    if isinstance(value, int) and not -INT64 <= value < INT64:
        raise form_problem("NONCE_TYPE_OUT_OF_BOUNDS", f"Must be between {-INT64} and {INT64 - 1}.")
    return value


# Discord numbers components itself where a request leaves ``id`` out (or sends 0).
ComponentId = Annotated[int, Field(ge=0, le=2**31 - 1)]


class ComponentEmoji(Body):
    """A button's emoji: a Unicode emoji by ``name``, or a custom one by ``id`` (and its name)."""

    id: Snowflake | None = None
    # The spec's ComponentEmojiForRequest requires a name; app.sandbox.components refuses an
    # emoji without one as Discord does ("Invalid emoji" at emoji.name).
    name: Annotated[str, _length(0, 32)] | None = None
    animated: bool | None = None


class Button(Body):
    type: Literal[2]
    id: ComponentId | None = None
    # 6 (premium) needs a SKU, which the sandbox has none of.
    style: Literal[1, 2, 3, 4, 5]
    label: Annotated[str, _length(0, 80)] | None = None
    custom_id: Annotated[str, _length(1, 100)] | None = None
    url: Annotated[str, _length(0, 512), AfterValidator(_url)] | None = None
    emoji: ComponentEmoji | None = None
    disabled: bool | None = None


class ActionRow(Body):
    # Buttons only: the sandbox has no select menus, so their types are refused as unknown.
    type: Literal[1]
    id: ComponentId | None = None
    components: Annotated[list[Button], _length(1, 5)]


class MessageFields(Body):
    """``POST /channels/{channel_id}/messages`` and its ``PATCH`` (which ignores the nonce)."""

    content: Annotated[str, Field(max_length=2000)] | None = None
    embeds: Annotated[list[dict[str, Any]], Field(max_length=10)] | None = None
    allowed_mentions: AllowedMentions | None = None
    # Messages without the components-v2 flag hold at most 5 action rows.
    components: Annotated[list[ActionRow], _length(0, 5)] | None = None
    tts: bool | None = None
    nonce: Annotated[str | int, PlainValidator(_nonce)] | None = None
    enforce_nonce: bool | None = None


class InteractionMessageFields(MessageFields):
    """A message through an interaction: the ``data`` of callback types 4 and 7, a follow-up,
    or an edit of the original response (the spec's ``IncomingWebhookInteractionRequest`` and
    its update partials)."""

    flags: int | None = None


# The spec's InteractionCallbackTypes; 10 (PREMIUM_REQUIRED) is gone from it, as from Discord.
CALLBACK_TYPES = (1, 4, 5, 6, 7, 8, 9, 12, 13)


def _callback_type(value: int) -> int:
    if value not in CALLBACK_TYPES:
        # Discord lists the choices in braces here, unlike its other choice errors.
        choices = ", ".join(map(str, CALLBACK_TYPES))
        raise form_problem("BASE_TYPE_CHOICES", f"Value must be one of {{{choices}}}.")
    return value


class InteractionCallback(Body):
    """``POST /interactions/{interaction_id}/{interaction_token}/callback``."""

    type: Annotated[int, AfterValidator(_callback_type)]
    data: InteractionMessageFields | None = None
