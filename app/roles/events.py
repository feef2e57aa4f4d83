"""The events every effective change of a guild's roles publishes, for subscribers to follow."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EventKind(StrEnum):
    ROLE_CREATED = "ROLE_CREATED"
    ROLE_UPDATED = "ROLE_UPDATED"
    ROLE_DELETED = "ROLE_DELETED"
    BOT_PERMISSIONS_CHANGED = "BOT_PERMISSIONS_CHANGED"
    CHANNEL_UPDATED = "CHANNEL_UPDATED"
    GUILD_RESYNCED = "GUILD_RESYNCED"


@dataclass(frozen=True)
class Change:
    """What changed in a guild, before it has a version and a place in the guild's stream."""

    kind: EventKind
    role_id: int | None = None
    channel_id: int | None = None
