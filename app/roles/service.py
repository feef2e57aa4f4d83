"""Reads of guild role data: cache first, one fill per guild from Discord, last known on failure.

A *fill* is the three REST calls one guild needs (the guild with its roles, the bot's member,
the channels). Fills are single-flight: in a process through :class:`SingleFlight`, across
processes through a Redis lock whose holder fetches while the others wait for its result.
When Discord fails, the last known copy is served and marked stale. When Redis is down,
fills go straight to Discord (still single-flight, with bounded concurrency) and their
results are kept in memory for a short while, so an outage does not multiply REST calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from app.cache.connection import CacheUnavailable
from app.cache.fill_lock import FillLock
from app.cache.role_cache import CachedReads, RoleCache
from app.discord.client import DiscordForbidden, DiscordNotFound, DiscordRest, DiscordRestError
from app.roles.errors import DiscordUnavailable, GuildNotFound, RolesError, guild_not_found
from app.roles.pingability import Validation, bot_abilities, validate_role
from app.roles.single_flight import SingleFlight
from app.roles.snapshot import BOT_NOT_IN_GUILD, UNKNOWN_GUILD, GuildSnapshot, Stale
from app.telemetry.metrics import FILL_WAITS, FILLS

log = logging.getLogger(__name__)

LOCAL_FALLBACK_SIZE = 10_000
LOCAL_FALLBACK_SECONDS = 30.0
# After Discord failed for a guild with no last known copy, callers get that failure at once
# for a moment instead of each trying a failing Discord again.
FAILURE_MEMORY_SECONDS = 2.0
# The version of data that must not be cached or have anything cached from it.
NEVER_CACHED = -1


@dataclass(frozen=True)
class ServiceLimits:
    fill_wait: float = 5.0
    discord_timeout: float = 8.0
    max_concurrent_fills: int = 16


@dataclass
class ReadResults:
    guilds: dict[int, GuildSnapshot | RolesError]
    validations: dict[tuple[int, int], Validation | RolesError]


class RoleService:
    def __init__(self, cache: RoleCache, discord: DiscordRest, limits: ServiceLimits | None = None) -> None:
        self.cache = cache
        self.discord = discord
        self.limits = limits or ServiceLimits()
        self._flights: SingleFlight[int, GuildSnapshot] = SingleFlight()
        self._fill_slots = asyncio.Semaphore(self.limits.max_concurrent_fills)
        self._local: OrderedDict[int, tuple[float, GuildSnapshot]] = OrderedDict()
        self._failures: dict[int, tuple[float, str]] = {}

    # -- reads ----------------------------------------------------------------------------------

    async def read(self, guild_ids: Sequence[int], validations: Sequence[tuple[int, int]]) -> ReadResults:
        """Guild snapshots and (guild-wide) role validations: one MGET, then fills as needed."""
        wanted_guilds = list(dict.fromkeys([*guild_ids, *(g for g, _ in validations)]))
        try:
            cached = await self.cache.read(wanted_guilds, validations)
        except CacheUnavailable:
            cached = CachedReads(guilds=dict.fromkeys(wanted_guilds), validations=dict.fromkeys(validations))

        snapshots: dict[int, GuildSnapshot | RolesError] = {}
        for guild_id, raw in cached.guilds.items():
            if raw is not None:
                snapshots[guild_id] = GuildSnapshot.from_json(raw)

        found: dict[tuple[int, int], Validation] = {}
        for pair, raw in cached.validations.items():
            if raw is None:
                continue
            validation = Validation.from_document(orjson.loads(raw))
            snapshot = snapshots.get(pair[0])
            if isinstance(snapshot, GuildSnapshot) and snapshot.version != validation.version:
                continue  # computed from other data than what is cached now
            found[pair] = validation

        to_fill = [g for g in guild_ids if g not in snapshots]
        to_fill += [
            g for g, r in validations if (g, r) not in found and g not in snapshots and g not in to_fill
        ]
        to_fill = list(dict.fromkeys(to_fill))
        if to_fill:
            filled = await asyncio.gather(*(self.snapshot(g) for g in to_fill), return_exceptions=True)
            for guild_id, outcome in zip(to_fill, filled, strict=True):
                if isinstance(outcome, RolesError | GuildSnapshot):
                    snapshots[guild_id] = outcome
                elif isinstance(outcome, BaseException):
                    raise outcome

        results = ReadResults(guilds={}, validations={})
        for guild_id in guild_ids:
            results.guilds[guild_id] = _usable(snapshots[guild_id])
        computed: dict[int, dict[int, Validation]] = {}
        for pair in validations:
            guild_id, role_id = pair
            if pair in found:
                results.validations[pair] = found[pair]
                continue
            snapshot = _usable(snapshots[guild_id])
            if isinstance(snapshot, RolesError):
                results.validations[pair] = snapshot
                continue
            validation = validate_role(snapshot, role_id, bot_abilities(snapshot))
            results.validations[pair] = validation
            if snapshot.stale is None:
                computed.setdefault(guild_id, {})[role_id] = validation
        await self._store_validations(snapshots, computed)
        return results

    async def guild(self, guild_id: int) -> GuildSnapshot:
        """One guild's data, or the RolesError that says why there is none."""
        snapshot = (await self.read([guild_id], [])).guilds[guild_id]
        if isinstance(snapshot, RolesError):
            raise snapshot
        return snapshot

    async def bot_guild_ids(self) -> list[int]:
        """The guilds the gateway bot reported being in (empty without a bot)."""
        try:
            return await self.cache.bot_guild_ids()
        except CacheUnavailable:
            return []

    async def _store_validations(
        self, snapshots: dict[int, GuildSnapshot | RolesError], computed: dict[int, dict[int, Validation]]
    ) -> None:
        for guild_id, by_role in computed.items():
            snapshot = snapshots[guild_id]
            if not isinstance(snapshot, GuildSnapshot):
                continue
            documents = {role_id: v.to_document() for role_id, v in by_role.items()}
            try:
                await self.cache.cache_role_validations(guild_id, documents, version=snapshot.version)
            except CacheUnavailable:
                return

    async def snapshot(self, guild_id: int) -> GuildSnapshot:
        """One guild's data, from a fill this process shares with every concurrent caller.

        The wait is bounded: past ``fill_wait`` plus ``discord_timeout`` the caller gets the
        last known copy, or a DISCORD_UNAVAILABLE error, while the fill goes on for others."""
        failed = self._failures.get(guild_id)
        if failed is not None:
            if failed[0] > time.monotonic():
                return await self._last_known_or_fail(guild_id, failed[1])
            del self._failures[guild_id]
        bound = self.limits.fill_wait + self.limits.discord_timeout
        try:
            async with asyncio.timeout(bound):  # not wait_for: it can swallow a cancellation on 3.11
                if self._flights.running(guild_id):
                    FILL_WAITS.inc()
                return await self._flights.run(guild_id, lambda: self._fill(guild_id))
        except TimeoutError:
            return await self._last_known_or_fail(
                guild_id, f"fetching guild {guild_id} took longer than {bound:g}s"
            )

    # -- fills ----------------------------------------------------------------------------------

    async def _fill(self, guild_id: int) -> GuildSnapshot:
        deadline = time.monotonic() + self.limits.fill_wait
        while True:
            if not self.cache.breaker.available:
                return await self._fill_without_redis(guild_id)
            lock = FillLock(self.cache, guild_id, timeout=self.limits.discord_timeout + self.limits.fill_wait)
            try:
                if await lock.acquire():
                    try:
                        return await self._fill_holding_lock(guild_id)
                    finally:
                        await lock.release()
                # Another process is fetching this guild: wait for what it writes.
                FILL_WAITS.inc()
                raw = await lock.wait_for_data(deadline)
            except CacheUnavailable:
                return await self._fill_without_redis(guild_id)
            if raw is not None:
                return GuildSnapshot.from_json(raw)
            if time.monotonic() >= deadline:
                why = f"another fetch of guild {guild_id} took longer than {self.limits.fill_wait:g}s"
                return await self._last_known_or_fail(guild_id, why)

    async def _fill_holding_lock(self, guild_id: int) -> GuildSnapshot:
        raw, version = await self.cache.guild_and_version(guild_id)
        if raw is not None:  # filled by someone else between our miss and the lock
            return GuildSnapshot.from_json(raw)
        try:
            snapshot = await self._fetch(guild_id, version)
        except DiscordRestError as error:
            self._failures[guild_id] = (time.monotonic() + FAILURE_MEMORY_SECONDS, str(error))
            return await self._last_known_or_fail(guild_id, str(error))
        payload = snapshot.to_json(with_version=False)
        try:
            if snapshot.absent is None:
                written = await self.cache.write_guild(guild_id, payload, read_at=version, ttl=self.cache.ttl)
            else:
                written = await self.cache.write_absent(guild_id, payload, read_at=version)
            if written:
                snapshot.version = written
                return snapshot
            # The guild was written while we fetched (the gateway, or a slower fill's rival):
            # what is cached is at least as new as ours.
            raw, _ = await self.cache.guild_and_version(guild_id)
        except CacheUnavailable:
            self._remember(snapshot)
            raw = None
        if raw is not None:
            return GuildSnapshot.from_json(raw)
        snapshot.version = NEVER_CACHED
        return snapshot

    async def _fill_without_redis(self, guild_id: int) -> GuildSnapshot:
        remembered = self._local.get(guild_id)
        if remembered is not None and remembered[0] > time.monotonic():
            return remembered[1]
        try:
            snapshot = await self._fetch(guild_id, version=0)
        except DiscordRestError as error:
            self._failures[guild_id] = (time.monotonic() + FAILURE_MEMORY_SECONDS, str(error))
            raise DiscordUnavailable(
                f"Discord could not be reached for guild {guild_id} ({error}) and the cache is down; "
                "retry shortly."
            ) from error
        self._remember(snapshot)
        return snapshot

    def _remember(self, snapshot: GuildSnapshot) -> None:
        snapshot.version = NEVER_CACHED  # fetched while Redis was away: nothing may be cached from it
        self._local[snapshot.guild_id] = (time.monotonic() + LOCAL_FALLBACK_SECONDS, snapshot)
        self._local.move_to_end(snapshot.guild_id)
        while len(self._local) > LOCAL_FALLBACK_SIZE:
            self._local.popitem(last=False)

    @property
    def cache_available(self) -> bool:
        return self.cache.breaker.available

    async def _last_known_or_fail(self, guild_id: int, why: str) -> GuildSnapshot:
        try:
            raw = await self.cache.last_known(guild_id)
        except CacheUnavailable:
            raw = None
        if raw is None:
            raise DiscordUnavailable(
                f"Discord could not be reached for guild {guild_id} ({why}) and no earlier copy is kept; "
                "retry shortly."
            )
        snapshot = GuildSnapshot.from_json(raw)
        snapshot.stale = Stale(reason=why, fetched_at=snapshot.fetched_at)
        self.cache.counters.last_known_served += 1
        log.warning("Serving the last known roles of guild %s: %s", guild_id, why)
        return snapshot

    async def _fetch(self, guild_id: int, version: int) -> GuildSnapshot:
        """The three REST calls of a fill, at once; an unknown guild comes back as absent."""
        try:
            snapshot = await self._fetch_once(guild_id, version)
        except BaseException:
            FILLS.labels("failed").inc()
            raise
        FILLS.labels("ok").inc()
        return snapshot

    async def _fetch_once(self, guild_id: int, version: int) -> GuildSnapshot:
        await self.discord.ensure_open()
        async with self._fill_slots:
            log.debug("Fetching guild %s from Discord.", guild_id)
            guild, member, channels = await asyncio.gather(
                self.discord.guild(guild_id),
                self.discord.member(guild_id, self.discord.bot_user_id),
                self.discord.guild_channels(guild_id),
                return_exceptions=True,
            )
        for outcome in (guild, member, channels):
            if isinstance(outcome, DiscordNotFound | DiscordForbidden):
                absent = (
                    UNKNOWN_GUILD
                    if outcome is guild and isinstance(outcome, DiscordNotFound)
                    else BOT_NOT_IN_GUILD
                )
                return GuildSnapshot.missing(guild_id, version, absent)
        for outcome in (guild, member, channels):
            if isinstance(outcome, BaseException):
                raise outcome
        if not (isinstance(guild, dict) and isinstance(member, dict) and isinstance(channels, list)):
            raise DiscordRestError(f"Discord answered guild {guild_id}'s calls with unexpected shapes.")
        return GuildSnapshot.from_discord(
            guild_id=guild_id,
            version=version,
            owner_id=int(guild["owner_id"]),
            name=str(guild.get("name", "")),
            bot_id=self.discord.bot_user_id,
            bot_role_ids=[int(role) for role in member.get("roles", [])],
            roles=guild["roles"],
            channels=channels,
        )


def _usable(snapshot: GuildSnapshot | RolesError) -> GuildSnapshot | RolesError:
    """A snapshot the caller can use, or the error that stands for its absence."""
    if isinstance(snapshot, RolesError) or snapshot.absent is None:
        return snapshot
    if snapshot.absent == UNKNOWN_GUILD:
        return guild_not_found(snapshot.guild_id)
    return GuildNotFound(
        f"The bot is not a member of guild {snapshot.guild_id}; invite it to the guild first."
    )
