"""A guild as the roles feature needs it: roles, the bot's member roles, channel overwrites.

One snapshot is what a fill fetches (three REST calls) or the gateway writes through, and
what ``guild_roles_ping:{guild_id}`` holds as JSON. Roles keep Discord's own shape.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson

from app.discord.permissions import Overwrite

RoleData = dict[str, Any]

UNKNOWN_GUILD = "UNKNOWN_GUILD"
BOT_NOT_IN_GUILD = "BOT_NOT_IN_GUILD"


@dataclass(frozen=True, slots=True)
class ChannelData:
    type: int
    overwrites: tuple[Overwrite, ...]
    name: str = ""
    position: int = 0
    parent_id: int | None = None


@dataclass(frozen=True)
class Stale:
    """Why a snapshot is served from the last known copy, and how old it is."""

    reason: str
    fetched_at: float


@dataclass
class GuildSnapshot:
    guild_id: int
    version: int
    fetched_at: float = field(default_factory=time.time)
    absent: str | None = None  # UNKNOWN_GUILD or BOT_NOT_IN_GUILD: nothing else is set
    owner_id: int = 0
    name: str = ""
    bot_id: int = 0
    bot_role_ids: tuple[int, ...] = ()
    roles: list[RoleData] = field(default_factory=list)  # highest first, as Discord orders them
    channels: dict[int, ChannelData] = field(default_factory=dict)
    stale: Stale | None = None

    @cached_property
    def roles_by_id(self) -> dict[int, RoleData]:
        return {int(role["id"]): role for role in self.roles}

    @cached_property
    def role_permissions(self) -> dict[int, int]:
        return {int(role["id"]): int(role["permissions"]) for role in self.roles}

    # -- building -------------------------------------------------------------------------------

    @classmethod
    def from_discord(
        cls,
        *,
        guild_id: int,
        version: int,
        owner_id: int,
        bot_id: int,
        bot_role_ids: list[int],
        roles: list[RoleData],
        channels: list[dict[str, Any]],
        name: str = "",
    ) -> GuildSnapshot:
        """From Discord's JSON: the guild's roles, the bot's member roles, the guild's channels."""
        return cls(
            guild_id=guild_id,
            version=version,
            owner_id=owner_id,
            name=name,
            bot_id=bot_id,
            bot_role_ids=tuple(bot_role_ids),
            roles=sort_roles(roles),
            channels={
                int(channel["id"]): ChannelData(
                    type=int(channel.get("type", 0)),
                    overwrites=tuple(
                        Overwrite(int(o["id"]), int(o["type"]), int(o["allow"]), int(o["deny"]))
                        for o in channel.get("permission_overwrites") or ()
                    ),
                    name=str(channel.get("name") or ""),
                    position=int(channel.get("position") or 0),
                    parent_id=None if channel.get("parent_id") is None else int(channel["parent_id"]),
                )
                for channel in channels
            },
        )

    @classmethod
    def missing(cls, guild_id: int, version: int, why: str) -> GuildSnapshot:
        return cls(guild_id=guild_id, version=version, absent=why)

    # -- JSON -----------------------------------------------------------------------------------

    def to_json(self, *, with_version: bool = True) -> bytes:
        """The cached document; without its version for writes that take the version in Redis."""
        head: dict[str, Any] = {"version": self.version} if with_version else {}
        if self.absent is not None:
            return orjson.dumps({**head, "guild_id": str(self.guild_id), "absent": self.absent})
        return orjson.dumps(
            {
                **head,
                "guild_id": str(self.guild_id),
                "fetched_at": self.fetched_at,
                "owner_id": str(self.owner_id),
                "name": self.name,
                "bot_id": str(self.bot_id),
                "bot_roles": [str(role) for role in self.bot_role_ids],
                "roles": self.roles,
                "channels": {
                    str(channel_id): {
                        "type": channel.type,
                        "overwrites": [[o.id, o.type, o.allow, o.deny] for o in channel.overwrites],
                        "name": channel.name,
                        "position": channel.position,
                        "parent_id": None if channel.parent_id is None else str(channel.parent_id),
                    }
                    for channel_id, channel in self.channels.items()
                },
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> GuildSnapshot:
        data = orjson.loads(raw)
        guild_id = int(data["guild_id"])
        version = int(data.get("version", 0))
        if data.get("absent"):
            return cls.missing(guild_id, version, data["absent"])
        return cls(
            guild_id=guild_id,
            version=version,
            fetched_at=float(data.get("fetched_at", 0.0)),
            owner_id=int(data["owner_id"]),
            name=data.get("name", ""),
            bot_id=int(data["bot_id"]),
            bot_role_ids=tuple(int(role) for role in data["bot_roles"]),
            roles=data["roles"],
            channels={
                int(channel_id): ChannelData(
                    type=int(channel["type"]),
                    overwrites=tuple(Overwrite(*map(int, o)) for o in channel["overwrites"]),
                    name=channel.get("name", ""),
                    position=int(channel.get("position", 0)),
                    parent_id=None if channel.get("parent_id") is None else int(channel["parent_id"]),
                )
                for channel_id, channel in data["channels"].items()
            },
        )


def sort_roles(roles: list[RoleData]) -> list[RoleData]:
    """Highest first: by position, and among equal positions the older (lower id) role first."""
    return sorted(roles, key=lambda role: (-int(role["position"]), int(role["id"])))
