"""``polly bot``: run the gateway bot until SIGTERM or SIGINT, then shut down cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

import discord

from app.bot.client import PollyBot
from app.bot.sync import GatewaySync
from app.cache.connection import Breaker, CacheUnavailable, RedisClient, open_redis
from app.cache.discord_budget import DiscordBudget
from app.cache.interactions import InteractionLog
from app.cache.keys import CacheKeys
from app.cache.poll_events import PollEventLog
from app.cache.poll_results import PollResultsCache
from app.cache.role_cache import RoleCache
from app.discord.client import DiscordRest, DiscordRestError, point_discord_py_at
from app.polls.buttons import ButtonVotes
from app.polls.events import PollEvents
from app.polls.record import PollRecord
from app.polls.scheduler import RateLimits, Scheduler
from app.polls.votes import VoteService
from app.roles.snapshot import GuildSnapshot
from app.settings import Settings, SettingsError, database_url, require_token, shard_plan
from app.storage.ballots import BallotStore
from app.storage.database import Database, DatabaseError
from app.storage.polls import PollStore

log = logging.getLogger(__name__)


class BotLoginRefused(Exception):
    """Discord refused the bot token."""


def role_cache_for(settings: Settings, client: RedisClient | None = None) -> RoleCache:
    return RoleCache(
        client or open_redis(str(settings.redis_url), timeout=settings.redis_timeout),
        keys=CacheKeys(settings.cache_prefix),
        breaker=Breaker(),
        ttl=settings.role_cache_ttl,
        last_known_ttl=settings.stale_grace,
        negative_ttl=settings.negative_cache_ttl,
    )


async def keep_fresh(sync: GatewaySync, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await sync.refresh_all()
        except CacheUnavailable:
            continue  # the sync's own recovery resyncs once Redis is back


def snapshots_of(sync: GatewaySync, cache: RoleCache) -> Callable[[int], Awaitable[GuildSnapshot | None]]:
    """A guild's role data as the gateway last told this process, else as Redis has it."""

    async def snapshot(guild_id: int) -> GuildSnapshot | None:
        known = sync.guilds.get(guild_id)
        if known is not None:
            return known
        try:
            raw = (await cache.read([guild_id], [])).guilds[guild_id]
        except CacheUnavailable:
            return None
        return None if raw is None else GuildSnapshot.from_json(raw)

    return snapshot


async def open_scheduler(settings: Settings, token: str, sync: GatewaySync, cache: RoleCache) -> Scheduler:
    database = Database(database_url(settings))
    discord_rest = DiscordRest(
        api_url=str(settings.discord_api_url),
        gateway_url=str(settings.discord_gateway_url),
        token=token,
        timeout=settings.discord_timeout,
    )
    return Scheduler(
        PollStore(database),
        discord_rest,
        snapshots_of(sync, cache),
        interval=settings.scheduler_interval,
        lease=settings.scheduler_lease,
        concurrency=settings.scheduler_concurrency,
        budget=DiscordBudget(cache),
        limits=RateLimits(
            global_per_second=settings.discord_global_rate,
            per_channel=settings.discord_channel_rate,
            channel_window=settings.discord_channel_window,
        ),
    )


async def run_scheduler(scheduler: Scheduler, retry_every: float = 5.0) -> None:
    """Migrate the database and log in to REST (each retried while down: the gateway side of
    the bot runs meanwhile), then schedule polls until cancelled."""
    while True:
        try:
            await scheduler.store.database.upgrade()
            await scheduler.discord.ensure_open()
            break
        except (DatabaseError, DiscordRestError) as error:
            log.warning("The poll scheduler cannot start yet (%s); retrying in %g s.", error, retry_every)
            await asyncio.sleep(retry_every)
    await scheduler.run()


async def run_bot(
    settings: Settings,
    stop: asyncio.Event | None = None,
    *,
    handle_signals: bool = True,
    redis_client: RedisClient | None = None,
    sync_type: type[GatewaySync] = GatewaySync,
) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT arrives); raises BotLoginRefused on a bad token."""
    token = require_token(settings)
    shard_count, shard_ids = shard_plan(settings)
    point_discord_py_at(str(settings.discord_api_url), str(settings.discord_gateway_url))
    cache = role_cache_for(settings, redis_client)
    sync = sync_type(cache, stream_length=settings.event_stream_length)
    events = PollEvents(PollEventLog(cache, stream_length=settings.event_stream_length))
    scheduler = await open_scheduler(settings, token, sync, cache)
    scheduler.events = events

    async def votes_changed(poll: PollRecord, results: object) -> None:
        events.votes_changed(poll)

    buttons = ButtonVotes(
        VoteService(
            scheduler.store,
            BallotStore(scheduler.store.database),
            PollResultsCache(cache, ttl=settings.role_cache_ttl),
            on_change=votes_changed,
        ),
        scheduler.store,
        scheduler.discord,
        InteractionLog(cache),
        defer_after=settings.interaction_defer_after,
    )
    bot = PollyBot(
        sync,
        shard_count=shard_count,
        shard_ids=shard_ids,
        on_channel_deleted=scheduler.channel_deleted,
        on_click=buttons.handle,
    )
    stop = stop or asyncio.Event()
    if handle_signals:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)

    tasks = [
        asyncio.create_task(sync.run(), name="gateway-sync"),
        asyncio.create_task(keep_fresh(sync, max(1.0, settings.role_cache_ttl / 3)), name="keep-fresh"),
        asyncio.create_task(run_scheduler(scheduler), name="poll-scheduler"),
        asyncio.create_task(bot.report_gateway(), name="gateway-metrics"),
    ]
    connection = asyncio.create_task(bot.start(token), name="gateway")
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({connection, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if connection.done():
            error = connection.exception()
            if isinstance(error, discord.LoginFailure):
                where = settings.discord_api_url
                raise BotLoginRefused(
                    f"Discord at {where} refused POLLY_DISCORD_TOKEN; set it to the bot's token."
                ) from error
            if error is not None:
                raise error
    finally:
        log.info("Stopping the gateway bot.")
        stopping.cancel()
        await bot.close()
        for task in (*tasks, connection):
            task.cancel()
        await asyncio.gather(*tasks, connection, stopping, return_exceptions=True)
        await events.close()
        await scheduler.discord.close()
        await scheduler.store.database.close()
        await cache.redis.aclose()


__all__ = ["BotLoginRefused", "SettingsError", "run_bot"]
