"""GraphQL types of the roles API."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry

from app.discord.snowflake import parse_snowflake
from app.roles.errors import InvalidInput
from app.roles.pingability import Reason, Validation


def snowflake(value: str, argument: str) -> int:
    """A Discord id from a GraphQL ID, or a BAD_USER_INPUT error naming the argument."""
    parsed = parse_snowflake(str(value))
    if parsed is None:
        raise InvalidInput(
            f"{argument} must be a Discord id (a snowflake: up to 20 digits), not {str(value)[:40]!r}."
        )
    return parsed


@strawberry.type(description="A role's colors; secondary and tertiary make gradient and holographic roles.")
class RoleColors:
    primary_color: int
    secondary_color: int | None
    tertiary_color: int | None


@strawberry.type(description="What makes a role special: the bot, integration or purchase it belongs to.")
class RoleTags:
    bot_id: strawberry.ID | None
    integration_id: strawberry.ID | None
    subscription_listing_id: strawberry.ID | None
    premium_subscriber: bool = strawberry.field(description="The guild's booster role.")
    available_for_purchase: bool
    guild_connections: bool = strawberry.field(description="A linked-roles role.")


@strawberry.type(description="A Discord role, as clients need it.")
class Role:
    id: strawberry.ID
    name: str
    color: int = strawberry.field(description="The primary color as an integer (0: no color).")
    colors: RoleColors
    position: int = strawberry.field(description="Higher is higher in the role list; @everyone is 0.")
    hoist: bool = strawberry.field(description="Shown separately in the member list.")
    mentionable: bool = strawberry.field(description="Anyone may mention it, without MENTION_EVERYONE.")
    managed: bool = strawberry.field(
        description="Owned by an integration, a bot or boosting; not assignable."
    )
    icon: str | None
    unicode_emoji: str | None
    tags: RoleTags | None
    permissions: str = strawberry.field(description="Discord's permission bit set, as a decimal string.")

    @classmethod
    def from_discord(cls, data: dict[str, Any]) -> Role:
        colors = data.get("colors") or {}
        tags = data.get("tags")
        return cls(
            id=strawberry.ID(str(data["id"])),
            name=data["name"],
            color=int(data.get("color", 0)),
            colors=RoleColors(
                primary_color=int(colors.get("primary_color", data.get("color", 0))),
                secondary_color=colors.get("secondary_color"),
                tertiary_color=colors.get("tertiary_color"),
            ),
            position=int(data["position"]),
            hoist=bool(data.get("hoist")),
            mentionable=bool(data.get("mentionable")),
            managed=bool(data.get("managed")),
            icon=data.get("icon"),
            unicode_emoji=data.get("unicode_emoji"),
            tags=None
            if tags is None
            else RoleTags(
                bot_id=optional_id(tags.get("bot_id")),
                integration_id=optional_id(tags.get("integration_id")),
                subscription_listing_id=optional_id(tags.get("subscription_listing_id")),
                # Discord marks these by the key's presence (with a null value).
                premium_subscriber="premium_subscriber" in tags,
                available_for_purchase="available_for_purchase" in tags,
                guild_connections="guild_connections" in tags,
            ),
            permissions=str(data["permissions"]),
        )


def optional_id(value: Any) -> strawberry.ID | None:
    return None if value is None else strawberry.ID(str(value))


@strawberry.enum(description="Why a role cannot be pinged (or is not a role of the guild).")
class RoleValidationReason(Enum):
    NOT_FOUND = strawberry.enum_value(Reason.NOT_FOUND.value, description="No such role in the guild.")
    EVERYONE = strawberry.enum_value(
        Reason.EVERYONE.value, description="@everyone is never pinged as a role."
    )
    MANAGED = strawberry.enum_value(
        Reason.MANAGED.value, description="Managed roles are pingable only when the bot is administrator."
    )
    NOT_MENTIONABLE = strawberry.enum_value(
        Reason.NOT_MENTIONABLE.value,
        description="Not mentionable, and the bot lacks MENTION_EVERYONE (in that channel).",
    )
    CHANNEL_NOT_VISIBLE = strawberry.enum_value(
        Reason.CHANNEL_NOT_VISIBLE.value, description="The bot cannot see the channel."
    )
    CANNOT_SEND_MESSAGES = strawberry.enum_value(
        Reason.CANNOT_SEND_MESSAGES.value, description="The bot cannot send messages in the channel."
    )


@strawberry.type(description="Whether one role id is a role of the guild, and whether the bot can ping it.")
class RoleValidation:
    role_id: strawberry.ID
    valid: bool = strawberry.field(description="The id is a role of this guild.")
    can_ping: bool
    reason: RoleValidationReason | None = strawberry.field(
        description="Why it cannot be pinged; null if it can."
    )
    role: Role | None

    @classmethod
    def from_validation(cls, validation: Validation) -> RoleValidation:
        return cls(
            role_id=strawberry.ID(str(validation.role_id)),
            valid=validation.valid,
            can_ping=validation.can_ping,
            reason=None if validation.reason is None else RoleValidationReason(validation.reason.value),
            role=None if validation.role is None else Role.from_discord(validation.role),
        )


@strawberry.enum(description="What changed in a guild.")
class GuildRolesChangeKind(Enum):
    ROLE_CREATED = "ROLE_CREATED"
    ROLE_UPDATED = "ROLE_UPDATED"
    ROLE_DELETED = "ROLE_DELETED"
    BOT_PERMISSIONS_CHANGED = strawberry.enum_value(
        "BOT_PERMISSIONS_CHANGED",
        description="What the bot may ping changed (its roles or their permissions).",
    )
    CHANNEL_UPDATED = strawberry.enum_value("CHANNEL_UPDATED", description="A channel's overwrites changed.")
    GUILD_RESYNCED = strawberry.enum_value(
        "GUILD_RESYNCED",
        description="Changes may have been missed: pingableRoles is the full current list; replace, do not"
        " merge.",
    )


@strawberry.type(description="One change of a guild's roles, with the pingable roles after it.")
class GuildRolesChanged:
    guild_id: strawberry.ID
    kind: GuildRolesChangeKind
    role_id: strawberry.ID | None = strawberry.field(description="The role that changed, if one did.")
    channel_id: strawberry.ID | None = strawberry.field(description="The channel that changed, if one did.")
    version: int = strawberry.field(description="The guild data's version after the change; it only grows.")
    event_id: str | None = strawberry.field(
        description="Pass it as `since` when reconnecting to receive what was missed."
    )
    at: datetime
    pingable_roles: list[Role] = strawberry.field(
        description="The roles the bot can ping now (in the subscription's channel, if one was given)."
    )


@strawberry.type(description="A channel of a guild.")
class Channel:
    id: strawberry.ID
    name: str
    type: int = strawberry.field(
        description="Discord's channel type: 0 text, 2 voice, 4 category, 5 news, ..."
    )
    position: int
    parent_id: strawberry.ID | None


@strawberry.type(description="A guild the bot is in.")
class Guild:
    id: strawberry.ID
    name: str
    channels: list[Channel] = strawberry.field(description="Its channels, in Discord's order.")
