"""Which roles the bot can really ping, by Discord's permission rules.

Never @everyone; managed roles only when the bot is administrator; otherwise a role is
pingable when it is mentionable or the bot has MENTION_EVERYONE — in the guild, or in a
channel after that channel's overwrites (where the bot must also see and write).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from app.discord import permissions as perms
from app.roles.errors import ChannelNotFound
from app.roles.snapshot import GuildSnapshot, RoleData, Stale

CATEGORY = 4


class Reason(Enum):
    NOT_FOUND = "NOT_FOUND"
    EVERYONE = "EVERYONE"
    MANAGED = "MANAGED"
    NOT_MENTIONABLE = "NOT_MENTIONABLE"
    CHANNEL_NOT_VISIBLE = "CHANNEL_NOT_VISIBLE"
    CANNOT_SEND_MESSAGES = "CANNOT_SEND_MESSAGES"


@dataclass(frozen=True)
class Validation:
    role_id: int
    valid: bool
    can_ping: bool
    reason: Reason | None
    role: RoleData | None
    version: int
    stale: Stale | None = None  # computed from the last known copy; never stored

    def to_document(self) -> dict[str, Any]:
        return {
            "role_id": str(self.role_id),
            "valid": self.valid,
            "can_ping": self.can_ping,
            "reason": None if self.reason is None else self.reason.value,
            "role": self.role,
            "version": self.version,
        }

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Validation:
        reason = document.get("reason")
        return cls(
            role_id=int(document["role_id"]),
            valid=bool(document["valid"]),
            can_ping=bool(document["can_ping"]),
            reason=None if reason is None else Reason(reason),
            role=document.get("role"),
            version=int(document.get("version", 0)),
        )


@dataclass(frozen=True)
class BotAbilities:
    """What the bot may do where the poll is posted."""

    administrator: bool
    mention_everyone: bool
    channel_problem: Reason | None  # set when no role at all can be pinged there


def bot_abilities(snapshot: GuildSnapshot, channel_id: int | None = None) -> BotAbilities:
    base = perms.base_permissions(
        guild_id=snapshot.guild_id,
        owner_id=snapshot.owner_id,
        member_id=snapshot.bot_id,
        member_role_ids=snapshot.bot_role_ids,
        role_permissions=snapshot.role_permissions,
    )
    administrator = base & perms.ADMINISTRATOR == perms.ADMINISTRATOR
    if channel_id is None:
        return BotAbilities(administrator, perms.has(base, perms.MENTION_EVERYONE), None)
    in_channel = channel_permissions(snapshot, channel_id, base)
    problem = None
    if not in_channel & perms.VIEW_CHANNEL:
        problem = Reason.CHANNEL_NOT_VISIBLE
    elif not in_channel & perms.SEND_MESSAGES:
        problem = Reason.CANNOT_SEND_MESSAGES
    return BotAbilities(administrator, perms.has(in_channel, perms.MENTION_EVERYONE), problem)


def channel_permissions(snapshot: GuildSnapshot, channel_id: int, base: int | None = None) -> int:
    """The bot's permissions in one channel of the guild (its overwrites applied); raises
    ChannelNotFound for a channel of another guild, or a category."""
    channel = snapshot.channels.get(channel_id)
    if channel is None:
        raise ChannelNotFound(f"Channel {channel_id} is not a channel of guild {snapshot.guild_id}.")
    if channel.type == CATEGORY:
        raise ChannelNotFound(f"Channel {channel_id} is a category; choose a channel messages are posted in.")
    if base is None:
        base = perms.base_permissions(
            guild_id=snapshot.guild_id,
            owner_id=snapshot.owner_id,
            member_id=snapshot.bot_id,
            member_role_ids=snapshot.bot_role_ids,
            role_permissions=snapshot.role_permissions,
        )
    return perms.channel_permissions(
        base,
        guild_id=snapshot.guild_id,
        member_id=snapshot.bot_id,
        member_role_ids=snapshot.bot_role_ids,
        overwrites=channel.overwrites,
    )


def why_not_pingable(snapshot: GuildSnapshot, role: RoleData, abilities: BotAbilities) -> Reason | None:
    if int(role["id"]) == snapshot.guild_id:
        return Reason.EVERYONE
    if abilities.channel_problem is not None:
        return abilities.channel_problem
    if role.get("managed") and not abilities.administrator:
        return Reason.MANAGED
    if not role.get("mentionable") and not abilities.mention_everyone:
        return Reason.NOT_MENTIONABLE
    return None


def pingable_roles(snapshot: GuildSnapshot, channel_id: int | None = None) -> list[RoleData]:
    abilities = bot_abilities(snapshot, channel_id)
    return [role for role in snapshot.roles if why_not_pingable(snapshot, role, abilities) is None]


def validate_role(snapshot: GuildSnapshot, role_id: int, abilities: BotAbilities) -> Validation:
    role = snapshot.roles_by_id.get(role_id)
    if role is None:
        return Validation(role_id, False, False, Reason.NOT_FOUND, None, snapshot.version, snapshot.stale)
    reason = why_not_pingable(snapshot, role, abilities)
    return Validation(role_id, True, reason is None, reason, role, snapshot.version, snapshot.stale)
