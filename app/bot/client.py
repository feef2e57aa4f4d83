"""The discord.py client of ``polly bot``: the guilds intent only, sharded, feeding the sync."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from app.bot.sync import GatewaySync
from app.polls.buttons import Click
from app.telemetry import logs
from app.telemetry.discord_calls import discord_trace
from app.telemetry.metrics import GATEWAY_CONNECTED, GATEWAY_GUILDS, GATEWAY_LATENCY


class _NoVoiceNotice(logging.Filter):
    """The bot never joins voice; discord.py's notice that voice support is missing is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "voice will NOT be supported" not in record.getMessage()


logging.getLogger("discord.client").addFilter(_NoVoiceNotice())


log = logging.getLogger(__name__)
IDENTIFY_INTERVAL = 5.0  # seconds between IDENTIFYs of one concurrency bucket (Discord's rule)


class PollyBot(discord.AutoShardedClient):
    def __init__(
        self,
        sync: GatewaySync,
        *,
        shard_count: int | None = None,
        shard_ids: list[int] | None = None,
        on_channel_deleted: Callable[[int], Awaitable[None]] | None = None,
        on_click: Callable[[Click], Awaitable[None]] | None = None,
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # roles, channels and the bot's own member; nothing privileged
        # Some of the shards (with their count), or every shard (discord.py's default).
        shards: dict[str, Any] = {} if shard_ids is None else {"shard_ids": shard_ids}
        super().__init__(
            intents=intents,
            shard_count=shard_count,
            **shards,
            enable_debug_events=True,  # on_socket_raw_receive: Discord's own JSON, as REST has it
            max_messages=None,
            chunk_guilds_at_startup=False,
            http_trace=discord_trace(),
        )
        self.sync = sync
        self._max_concurrency: int | None = None
        self._identified: dict[int, float] = {}  # bucket -> when a shard of it last identified
        self.on_channel_deleted = on_channel_deleted
        self.on_click = on_click

    async def on_socket_raw_receive(self, message: str) -> None:
        # discord.py starts these handlers in the order messages arrived; feeding is the
        # first thing each does, so the sync sees the gateway's order.
        self.sync.feed(message)

    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        if self.on_channel_deleted is not None:
            await self.on_channel_deleted(channel.id)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Discord lets ``max_concurrency`` shards IDENTIFY at once, one per bucket (shard id
        modulo max_concurrency) every 5 s; discord.py's default waits 5 s before every shard
        but the first, which makes a large bot's start minutes longer than Discord asks."""
        if self._max_concurrency is None:
            try:
                self._max_concurrency = max(1, (await self.fetch_session_start_limits()).max_concurrency)
            except (discord.HTTPException, discord.GatewayNotFound, OSError) as error:
                log.warning(
                    "Could not read the session start limits (%s); identifying one shard at a time.", error
                )
                self._max_concurrency = 1
        bucket = (shard_id or 0) % self._max_concurrency
        last = self._identified.get(bucket)
        now = asyncio.get_running_loop().time()
        if last is not None and now - last < IDENTIFY_INTERVAL:
            await asyncio.sleep(IDENTIFY_INTERVAL - (now - last))
        self._identified[bucket] = asyncio.get_running_loop().time()

    async def report_gateway(self, every: float = 5.0) -> None:
        """Each shard's session state and heartbeat latency, for the metrics, until cancelled."""
        while True:
            GATEWAY_GUILDS.set(len(self.guilds))
            for shard_id, shard in self.shards.items():
                up = not shard.is_closed()
                GATEWAY_CONNECTED.labels(str(shard_id)).set(1 if up else 0)
                if up and math.isfinite(shard.latency):
                    GATEWAY_LATENCY.labels(str(shard_id)).set(shard.latency)
            await asyncio.sleep(every)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if self.on_click is None or interaction.type is not discord.InteractionType.component:
            return
        with logs.about(shard=interaction.guild and interaction.guild.shard_id, guild=interaction.guild_id,
                        event="INTERACTION_CREATE"):  # fmt: skip
            await self._clicked(interaction)

    async def _clicked(self, interaction: discord.Interaction) -> None:
        if self.on_click is None:
            return
        data: dict[str, object] = dict(interaction.data or {})
        custom_id = data.get("custom_id")
        if not isinstance(custom_id, str):
            return
        user = interaction.user
        roles = frozenset(role.id for role in user.roles) if isinstance(user, discord.Member) else frozenset()
        click = Click(
            interaction.id, interaction.token, custom_id, user.id, roles, interaction.application_id
        )
        await self.on_click(click)
