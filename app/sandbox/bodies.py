"""Request bodies the sandbox accepts, validated as Discord validates them (errors become 50035)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.sandbox.fixture import Bits, Color, Snowflake


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


class MessageFields(Body):
    content: Annotated[str, Field(max_length=2000)] | None = None
    embeds: Annotated[list[dict[str, Any]], Field(max_length=10)] | None = None
    allowed_mentions: AllowedMentions | None = None
    tts: bool | None = None
    nonce: Annotated[str, Field(max_length=25)] | int | None = None
