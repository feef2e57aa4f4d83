"""Deciding whether a change of a guild is effective: whether clients of the API would see it.

A change is effective when a field the API exposes on a role changes, when a role comes or
goes, or when what the bot may ping changes (its administrator right, MENTION_EVERYONE, or a
channel it can no longer see or write in). Anything else — a role's flags, a channel's name,
the same values written again — changes nothing a client sees and publishes no event.
"""

from __future__ import annotations

from typing import Any

from app.roles.errors import ChannelNotFound
from app.roles.events import Change, EventKind
from app.roles.pingability import BotAbilities, bot_abilities
from app.roles.snapshot import GuildSnapshot, RoleData

EXPOSED_ROLE_FIELDS = (
    "name",
    "color",
    "colors",
    "position",
    "hoist",
    "mentionable",
    "managed",
    "icon",
    "unicode_emoji",
    "tags",
    "permissions",
)


def exposed(role: RoleData) -> tuple[Any, ...]:
    return tuple(role.get(name) for name in EXPOSED_ROLE_FIELDS)


def same_stored_data(before: GuildSnapshot | None, after: GuildSnapshot) -> bool:
    """Whether ``after`` would store exactly what ``before`` holds (so nothing needs writing)."""
    if before is None:
        return False
    return (
        before.owner_id == after.owner_id
        and before.name == after.name
        and before.bot_id == after.bot_id
        and before.bot_role_ids == after.bot_role_ids
        and before.roles == after.roles
        and before.channels == after.channels
    )


def abilities(snapshot: GuildSnapshot, channel_id: int | None) -> BotAbilities | None:
    """What the bot may ping in a channel (None: no such channel, or a category)."""
    try:
        return bot_abilities(snapshot, channel_id)
    except ChannelNotFound:
        return None


def abilities_differ(before: GuildSnapshot, after: GuildSnapshot) -> bool:
    channels = set(before.channels) | set(after.channels)
    return any(abilities(before, c) != abilities(after, c) for c in (None, *channels))


def roles_differ(before: GuildSnapshot, after: GuildSnapshot) -> bool:
    old = {role_id: exposed(role) for role_id, role in before.roles_by_id.items()}
    new = {role_id: exposed(role) for role_id, role in after.roles_by_id.items()}
    return old != new


def classify(before: GuildSnapshot | None, after: GuildSnapshot, proposed: Change) -> Change | None:
    """The event ``proposed`` by a gateway dispatch, if the change is effective; else None."""
    if before is None:
        return proposed if proposed.kind is EventKind.GUILD_RESYNCED else Change(EventKind.GUILD_RESYNCED)
    if proposed.kind is EventKind.CHANNEL_UPDATED:
        channel = proposed.channel_id
        if abilities(before, channel) == abilities(after, channel):
            return None
        return proposed
    permissions_changed = abilities_differ(before, after)
    if not permissions_changed and not roles_differ(before, after):
        return None
    if proposed.kind is EventKind.ROLE_UPDATED and permissions_changed:
        return Change(EventKind.BOT_PERMISSIONS_CHANGED, role_id=proposed.role_id)
    return proposed
