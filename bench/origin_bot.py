"""The origin design's bot, for comparison in bench/api_calls: no write-through. Role events
only invalidate the guild's cache (when a role's name, mentionable or managed flag changes, or a
role comes or goes), and the API refills it from Discord on the next read; guilds, members and
channels are not written at all. Run as ``python -m bench.origin_bot`` with polly bot's
settings. Kept out of the product: polly bot always writes through."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from typing import Any

from app.bot.runner import BotLoginRefused, run_bot
from app.bot.sync import GatewaySync
from app.roles.snapshot import sort_roles
from app.settings import SettingsError, load_settings

SEED_FIELDS = ("name", "mentionable", "managed")


class InvalidatingSync(GatewaySync):
    async def _resync(self, guild_id: int, snapshot: Any, *, events_lost: bool = False) -> None:
        return  # nothing is written through: GUILD_CREATE is only kept in memory

    async def _role_upsert(self, data: dict[str, Any], kind: Any) -> None:
        guild_id = int(data["guild_id"])
        before = self.guilds.get(guild_id)
        if before is None:
            return
        role = data["role"]
        role_id = int(role["id"])
        roles = [r for r in before.roles if int(r["id"]) != role_id] + [role]
        self.guilds[guild_id] = replace(before, roles=sort_roles(roles))
        old = before.roles_by_id.get(role_id)
        if old is None or any(old.get(field) != role.get(field) for field in SEED_FIELDS):
            await self.cache.invalidate_guild_roles_cache(guild_id)

    async def _role_delete(self, data: dict[str, Any]) -> None:
        guild_id = int(data["guild_id"])
        before = self.guilds.get(guild_id)
        if before is None:
            return
        role_id = int(data["role_id"])
        self.guilds[guild_id] = replace(before, roles=[r for r in before.roles if int(r["id"]) != role_id])
        await self.cache.invalidate_guild_roles_cache(guild_id)

    async def _member_update(self, data: dict[str, Any]) -> None:
        return

    async def _channel_change(self, data: dict[str, Any], *, deleted: bool = False) -> None:
        return


def main() -> int:
    try:
        asyncio.run(run_bot(load_settings(), sync_type=InvalidatingSync))
    except (SettingsError, BotLoginRefused) as error:
        print(f"bench.origin_bot: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
