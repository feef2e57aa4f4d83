"""Discord's gateway dispatches, applied to the role cache in order.

The bot keeps each guild's snapshot in memory, applies every dispatch to it, writes the result
through to Redis as the guild's newest version, and publishes one event per effective change
(see app/roles/changes.py). Dispatches are applied one at a time, in the order the gateway sent
them. A failed write is logged and retried; while Redis is down the bot keeps its gateway
session, and when Redis answers again it resyncs every guild.

The origin design (no write-through; role events only invalidate the cache) lives in
bench/origin_bot.py, for comparison in bench/api_calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson

from app.cache.connection import CacheUnavailable
from app.cache.role_cache import EventFields, RoleCache
from app.roles.changes import classify, same_stored_data
from app.roles.events import Change, EventKind
from app.roles.snapshot import GuildSnapshot, sort_roles
from app.telemetry import logs
from app.telemetry.metrics import GATEWAY_EVENTS, GATEWAY_RESYNCS, event_kind

log = logging.getLogger(__name__)


def _shard_of(guild_id: int, shard_count: int) -> int:
    return (guild_id >> 22) % shard_count


def _guild_of(name: str, data: dict[str, Any]) -> int | None:
    """The guild a dispatch is about: ``guild_id``, or ``id`` for the GUILD_* events themselves."""
    raw = data.get("guild_id")
    if raw is None and name in ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"):
        raw = data.get("id")
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


class GatewaySync:
    def __init__(
        self,
        cache: RoleCache,
        *,
        stream_length: int = 1000,
        retry_interval: float = 1.0,
    ) -> None:
        self.cache = cache
        self.stream_length = stream_length
        self.retry_interval = retry_interval
        self.guilds: dict[int, GuildSnapshot] = {}
        self.bot_id = 0
        self._queue: asyncio.Queue[str | bytes] = asyncio.Queue()
        self._redis_lost = False
        self.shard_count = 1  # as READY says

    # -- intake ---------------------------------------------------------------------------------

    def feed(self, raw: str | bytes) -> None:
        """Take one raw gateway message; called in the order the gateway delivered them."""
        self._queue.put_nowait(raw)

    async def run(self) -> None:
        """Apply dispatches until cancelled; nothing here is allowed to stop the loop."""
        retry = asyncio.create_task(self._recover_when_redis_returns())
        try:
            while True:
                raw = await self._queue.get()
                try:
                    await self._apply(raw)
                except CacheUnavailable:
                    self._lost_redis()
                except Exception:
                    log.exception("Could not apply a gateway dispatch; continuing with the next.")
        finally:
            retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retry

    # -- dispatches -----------------------------------------------------------------------------

    async def _apply(self, raw: str | bytes) -> None:
        message = orjson.loads(raw)
        if message.get("op") != 0:
            return
        name, data = message.get("t"), message.get("d") or {}
        GATEWAY_EVENTS.labels(event_kind(name)).inc()
        if name == "READY":
            self.shard_count = int((data.get("shard") or (0, 1))[1])
        method = _HANDLERS.get(name)
        if method is None:
            return
        handler = getattr(self, method)
        guild = _guild_of(name, data)
        shard = _shard_of(guild, self.shard_count) if guild else (data.get("shard") or (0, 1))[0]
        with logs.about(shard=shard, guild=guild, event=name):
            await handler(data)

    async def _ready(self, data: dict[str, Any]) -> None:
        self.bot_id = int(data["user"]["id"])
        shard_id, shard_count = data.get("shard") or (0, 1)
        present = {int(guild["id"]) for guild in data.get("guilds", [])}
        # Guilds the bot left while it was away: forget them (the GUILD_CREATEs that follow
        # rewrite every guild it is still in).
        for guild_id in await self.cache.bot_guild_ids():
            if _shard_of(guild_id, shard_count) == shard_id and guild_id not in present:
                await self._left(guild_id)

    async def _guild_create(self, data: dict[str, Any]) -> None:
        if data.get("unavailable"):
            return
        guild_id = int(data["id"])
        bot_member = next(
            (m for m in data.get("members", []) if int(m.get("user", {}).get("id", 0)) == self.bot_id), None
        )
        snapshot = GuildSnapshot.from_discord(
            guild_id=guild_id,
            version=0,
            owner_id=int(data["owner_id"]),
            name=str(data.get("name", "")),
            bot_id=self.bot_id,
            bot_role_ids=[int(role) for role in (bot_member or {}).get("roles", [])],
            roles=data.get("roles", []),
            channels=data.get("channels", []),
        )
        self.guilds[guild_id] = snapshot
        await self._resync(guild_id, snapshot)

    async def _resync(self, guild_id: int, snapshot: GuildSnapshot, *, events_lost: bool = False) -> None:
        """Make the cache hold ``snapshot``. Clients hear of it (GUILD_RESYNCED) when what they
        were served differs, or was there once and is lost, or events may have been lost."""
        GATEWAY_RESYNCS.inc()
        await self.cache.add_bot_guild(guild_id)
        raw, version = await self.cache.guild_and_version(guild_id)
        cached = GuildSnapshot.from_json(raw) if raw is not None else None
        if cached is not None and cached.absent is None and same_stored_data(cached, snapshot):
            version = await self.cache.refresh(guild_id, snapshot.to_json(with_version=False))
            self.guilds[guild_id] = replace(snapshot, version=version or cached.version)
            return
        announce = events_lost or cached is not None or version > 0
        await self._write(guild_id, snapshot, Change(EventKind.GUILD_RESYNCED) if announce else None)

    async def _guild_update(self, data: dict[str, Any]) -> None:
        guild_id = int(data["id"])
        before = self.guilds.get(guild_id)
        if before is None:
            return
        after = replace(
            before,
            owner_id=int(data.get("owner_id", before.owner_id)),
            name=str(data.get("name", before.name)),
            roles=sort_roles(data["roles"]) if "roles" in data else before.roles,
        )
        await self._commit(before, after, Change(EventKind.BOT_PERMISSIONS_CHANGED))

    async def _guild_delete(self, data: dict[str, Any]) -> None:
        if data.get("unavailable"):
            return  # an outage on Discord's side: the data is still right
        await self._left(int(data["id"]))

    async def _left(self, guild_id: int) -> None:
        self.guilds.pop(guild_id, None)
        await self.cache.remove_bot_guild(guild_id)
        await self.cache.drop_guild(guild_id)
        log.info("The bot left guild %s; its cached roles are dropped.", guild_id)

    async def _role_upsert(self, data: dict[str, Any], kind: EventKind) -> None:
        guild_id = int(data["guild_id"])
        before = self.guilds.get(guild_id)
        if before is None:
            return
        role = data["role"]
        role_id = int(role["id"])
        roles = [r for r in before.roles if int(r["id"]) != role_id] + [role]
        after = replace(before, roles=sort_roles(roles))
        await self._commit(before, after, Change(kind, role_id=role_id))

    async def _role_create(self, data: dict[str, Any]) -> None:
        await self._role_upsert(data, EventKind.ROLE_CREATED)

    async def _role_update(self, data: dict[str, Any]) -> None:
        await self._role_upsert(data, EventKind.ROLE_UPDATED)

    async def _role_delete(self, data: dict[str, Any]) -> None:
        guild_id = int(data["guild_id"])
        before = self.guilds.get(guild_id)
        if before is None:
            return
        role_id = int(data["role_id"])
        after = replace(
            before,
            roles=[r for r in before.roles if int(r["id"]) != role_id],
            bot_role_ids=tuple(r for r in before.bot_role_ids if r != role_id),
        )
        await self._commit(before, after, Change(EventKind.ROLE_DELETED, role_id=role_id))

    async def _member_update(self, data: dict[str, Any]) -> None:
        if int(data.get("user", {}).get("id", 0)) != self.bot_id:
            return
        guild_id = int(data["guild_id"])
        before = self.guilds.get(guild_id)
        if before is None:
            return
        after = replace(before, bot_role_ids=tuple(int(role) for role in data.get("roles", [])))
        await self._commit(before, after, Change(EventKind.BOT_PERMISSIONS_CHANGED))

    async def _channel_change(self, data: dict[str, Any], *, deleted: bool = False) -> None:
        if "guild_id" not in data:
            return
        guild_id = int(data["guild_id"])
        before = self.guilds.get(guild_id)
        if before is None:
            return
        channel_id = int(data["id"])
        channels = dict(before.channels)
        if deleted:
            channels.pop(channel_id, None)
        else:
            channels.update(GuildSnapshot.from_discord(
                guild_id=guild_id, version=0, owner_id=0, bot_id=0, bot_role_ids=[], roles=[], channels=[data]
            ).channels)  # fmt: skip
        after = replace(before, channels=channels)
        await self._commit(before, after, Change(EventKind.CHANNEL_UPDATED, channel_id=channel_id))

    async def _channel_create(self, data: dict[str, Any]) -> None:
        await self._channel_change(data)

    async def _channel_update(self, data: dict[str, Any]) -> None:
        await self._channel_change(data)

    async def _channel_delete(self, data: dict[str, Any]) -> None:
        await self._channel_change(data, deleted=True)

    # -- writes ---------------------------------------------------------------------------------

    async def _commit(self, before: GuildSnapshot, after: GuildSnapshot, proposed: Change) -> None:
        self.guilds[after.guild_id] = after
        if same_stored_data(before, after):
            return
        await self._write(after.guild_id, after, classify(before, after, proposed))

    async def _write(self, guild_id: int, snapshot: GuildSnapshot, change: Change | None) -> None:
        event = None
        if change is not None:
            event = EventFields(
                kind=change.kind.value,
                role_id=None if change.role_id is None else str(change.role_id),
                channel_id=None if change.channel_id is None else str(change.channel_id),
                at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            )
        payload = snapshot.to_json(with_version=False)
        version, _ = await self.cache.apply_change(guild_id, payload, event, stream_length=self.stream_length)
        self.guilds[guild_id] = replace(snapshot, version=version)
        if change is not None:
            log.info("Guild %s: %s (version %s).", guild_id, change.kind.value, version)

    # -- Redis outages --------------------------------------------------------------------------

    def _lost_redis(self) -> None:
        if not self._redis_lost:
            log.warning(
                "Redis is unavailable; the bot keeps its gateway session and resyncs when Redis is back."
            )
        self._redis_lost = True

    async def _recover_when_redis_returns(self) -> None:
        while True:
            await asyncio.sleep(self.retry_interval)
            if not self._redis_lost or not self.cache.breaker.available:
                continue
            try:
                await self.cache.ping()
                await self.resync_all()
            except CacheUnavailable:
                continue
            except Exception:
                # Anything else must not end the recovery for good: the next attempt may succeed,
                # and a later outage still needs this loop.
                log.exception("Resyncing after a Redis outage failed; trying again.")
                continue
            self._redis_lost = False
            log.warning("Redis is back; every guild was resynced.")

    async def resync_all(self) -> None:
        """Check every guild the bot is in against the cache and rewrite (and announce) what
        differs: after an outage, events for it may never have been published."""
        for guild_id, snapshot in list(self.guilds.items()):
            await self._resync(guild_id, snapshot, events_lost=True)

    async def refresh_all(self) -> None:
        """Keep every guild's data from expiring (the gateway keeps it right, not the TTL)."""
        for guild_id, snapshot in list(self.guilds.items()):
            version = await self.cache.refresh(guild_id, snapshot.to_json(with_version=False))
            if version:
                self.guilds[guild_id] = replace(snapshot, version=version)


# Dispatch name -> the method that applies it (looked up on the instance: a subclass may
# apply a dispatch its own way, as bench/origin_bot.py does).
_HANDLERS = {
    "READY": "_ready",
    "GUILD_CREATE": "_guild_create",
    "GUILD_UPDATE": "_guild_update",
    "GUILD_DELETE": "_guild_delete",
    "GUILD_ROLE_CREATE": "_role_create",
    "GUILD_ROLE_UPDATE": "_role_update",
    "GUILD_ROLE_DELETE": "_role_delete",
    "GUILD_MEMBER_UPDATE": "_member_update",
    "CHANNEL_CREATE": "_channel_create",
    "CHANNEL_UPDATE": "_channel_update",
    "CHANNEL_DELETE": "_channel_delete",
}
