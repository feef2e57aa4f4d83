"""The sandbox's world: users, guilds, roles, channels and members, as a fixture file holds them.

The same models are the sandbox's in-memory state, so ``GET /_sandbox/fixture`` returns a
document that loads back with ``--fixture``. Ids are integers in memory and strings in JSON,
as Discord sends them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from app.discord.snowflake import is_digits

MAX_ROLES = 250
MAX_SNOWFLAKE = 2**64 - 1
# The default application's OAuth2 client secret (app.sandbox.builtin.CLIENT_SECRET).
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"


def _parse_snowflake(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a snowflake (a string of digits)")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and is_digits(value):
        number = int(value)
    else:
        raise ValueError("must be a snowflake (a string of digits)")
    if not 0 < number <= MAX_SNOWFLAKE:
        raise ValueError("must be a snowflake between 1 and 2^64-1")
    return number


def _parse_bits(value: Any) -> int:
    """Permission bit sets: Discord sends them as strings; fixtures may use numbers."""
    if isinstance(value, bool):
        raise ValueError("must be a permission bit set (a string of digits)")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and is_digits(value):
        return int(value)
    raise ValueError("must be a permission bit set (a string of digits)")


Snowflake = Annotated[int, BeforeValidator(_parse_snowflake), PlainSerializer(str, return_type=str)]
Bits = Annotated[int, BeforeValidator(_parse_bits), PlainSerializer(str, return_type=str)]
Color = Annotated[int, Field(ge=0, le=0xFFFFFF)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


class User(Model):
    id: Snowflake
    username: str = Field(min_length=1, max_length=32)
    global_name: str | None = None
    discriminator: str = "0"
    avatar: str | None = None
    bot: bool = False


class BotUser(User):
    bot: bool = True
    token: str = Field(min_length=1)


class Application(Model):
    id: Snowflake
    name: str = Field(min_length=1)
    description: str = ""
    client_secret: str = Field(default=DEFAULT_CLIENT_SECRET, min_length=1)
    # Empty: any http(s) redirect URI on a loopback host is accepted (see app.sandbox.oauth_store).
    redirect_uris: list[str] = Field(default_factory=list)

    @field_validator("redirect_uris")
    @classmethod
    def _absolute_uris(cls, uris: list[str]) -> list[str]:
        for uri in uris:
            parts = urlsplit(uri)
            if not parts.scheme or (parts.scheme in ("http", "https") and not parts.hostname):
                raise ValueError(
                    f"redirect URI {uri!r} is not an absolute URI such as http://127.0.0.1:8000/cb"
                )
            if parts.fragment:
                raise ValueError(f"redirect URI {uri!r} has a fragment (#...), which OAuth2 forbids")
        return uris


class RoleTags(Model):
    bot_id: Snowflake | None = None
    integration_id: Snowflake | None = None
    subscription_listing_id: Snowflake | None = None
    premium_subscriber: bool = False
    available_for_purchase: bool = False
    guild_connections: bool = False


class Role(Model):
    id: Snowflake
    name: str = Field(min_length=1, max_length=100)
    color: Color = 0
    secondary_color: Color | None = None
    tertiary_color: Color | None = None
    hoist: bool = False
    icon: str | None = None
    unicode_emoji: str | None = None
    position: int = Field(default=0, ge=0)
    permissions: Bits = 0
    managed: bool = False
    mentionable: bool = False
    flags: int = 0
    tags: RoleTags | None = None


class Overwrite(Model):
    id: Snowflake
    type: Literal[0, 1]
    allow: Bits = 0
    deny: Bits = 0


class Message(Model):
    id: Snowflake
    author_id: Snowflake
    content: str = ""
    timestamp: datetime
    edited_timestamp: datetime | None = None
    mention_roles: list[Snowflake] = Field(default_factory=list)
    mention_user_ids: list[Snowflake] = Field(default_factory=list)
    mention_everyone: bool = False
    embeds: list[dict[str, Any]] = Field(default_factory=list)
    # Action rows of buttons, as Discord returns them (numbered; see app.sandbox.components).
    components: list[dict[str, Any]] = Field(default_factory=list)
    # Discord's message flags (64 EPHEMERAL, 128 LOADING, ...).
    flags: int = 0
    # Set on the messages an application posts through an interaction's webhook (its id for
    # both), with the interaction they answer (``MessageComponentInteractionMetadataResponse``).
    webhook_id: Snowflake | None = None
    application_id: Snowflake | None = None
    interaction_metadata: dict[str, Any] | None = None


class Channel(Model):
    id: Snowflake
    name: str = Field(min_length=1, max_length=100)
    type: Literal[0, 2, 4, 5, 13, 15] = 0
    position: int = 0
    parent_id: Snowflake | None = None
    topic: str | None = None
    nsfw: bool = False
    permission_overwrites: list[Overwrite] = Field(default_factory=list)
    messages: list[Message] = Field(default_factory=list)


class Member(Model):
    user_id: Snowflake
    nick: str | None = None
    roles: list[Snowflake] = Field(default_factory=list)
    joined_at: datetime = Field(default_factory=lambda: datetime(2024, 1, 1, tzinfo=UTC))
    premium_since: datetime | None = None


class Guild(Model):
    id: Snowflake
    name: str = Field(min_length=2, max_length=100)
    owner_id: Snowflake
    icon: str | None = None
    description: str | None = None
    roles: list[Role]
    channels: list[Channel] = Field(default_factory=list)
    members: list[Member] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Guild:
        role_ids = [role.id for role in self.roles]
        if self.id not in role_ids:
            raise ValueError(f"guild {self.id} has no @everyone role (a role whose id is the guild's id)")
        if len(role_ids) != len(set(role_ids)):
            raise ValueError(f"guild {self.id} lists a role id twice")
        if len(role_ids) > MAX_ROLES:
            raise ValueError(f"guild {self.id} has {len(role_ids)} roles; Discord allows at most {MAX_ROLES}")
        known = set(role_ids)
        member_ids = {member.user_id for member in self.members}
        for member in self.members:
            unknown = [role for role in member.roles if role not in known or role == self.id]
            if unknown:
                raise ValueError(f"member {member.user_id} of guild {self.id} has unknown roles {unknown}")
        for channel in self.channels:
            for overwrite in channel.permission_overwrites:
                targets = known if overwrite.type == 0 else member_ids
                if overwrite.id not in targets:
                    raise ValueError(
                        f"channel {channel.id} has an overwrite for {overwrite.id}, "
                        f"which is not a {'role' if overwrite.type == 0 else 'member'} of guild {self.id}"
                    )
        return self


class Fixture(Model):
    bot: BotUser
    application: Application
    users: list[User] = Field(default_factory=list)
    guilds: list[Guild] = Field(default_factory=list)
    shards: int = Field(default=1, ge=1, le=64)
    # Shards that may IDENTIFY at once (GET /gateway/bot's session_start_limit); 1, as Discord
    # gives most bots, has discord.py wait 5 s between shards.
    max_concurrency: int = Field(default=1, ge=1, le=64)

    @model_validator(mode="after")
    def _consistent(self) -> Fixture:
        user_ids = [user.id for user in self.users] + [self.bot.id]
        if len(user_ids) != len(set(user_ids)):
            raise ValueError("a user id appears twice (the bot counts as a user)")
        known_users = set(user_ids)
        guild_ids = [guild.id for guild in self.guilds]
        if len(guild_ids) != len(set(guild_ids)):
            raise ValueError("a guild id appears twice")
        channel_ids: set[int] = set()
        for guild in self.guilds:
            if guild.owner_id not in known_users:
                raise ValueError(f"guild {guild.id} is owned by unknown user {guild.owner_id}")
            for member in guild.members:
                if member.user_id not in known_users:
                    raise ValueError(f"guild {guild.id} has a member {member.user_id} who is not a user")
            for channel in guild.channels:
                if channel.id in channel_ids:
                    raise ValueError(f"channel id {channel.id} appears twice")
                channel_ids.add(channel.id)
        return self


class FixtureError(Exception):
    """A fixture file cannot be used; the message names the file and the problem."""


def _describe(error: ValidationError) -> str:
    problems = []
    for problem in error.errors()[:5]:
        where = ".".join(str(part) for part in problem["loc"]) or "top level"
        problems.append(f"{where}: {problem['msg']}")
    more = len(error.errors()) - len(problems)
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")


def load_fixture(path: Path) -> Fixture:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise FixtureError(f"Cannot read fixture file {path}: {error.strerror}.") from error
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise FixtureError(f"Fixture file {path} is not valid JSON: {error.msg} at {where}.") from error
    try:
        return Fixture.model_validate(document)
    except ValidationError as error:
        raise FixtureError(
            f"Fixture file {path} is not a valid sandbox fixture: {_describe(error)}."
        ) from error
