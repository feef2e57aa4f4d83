"""discord.py's own latency figure is right on the sandbox: no "Can't keep up" false alarms."""

from __future__ import annotations

import asyncio
import json
import logging

import discord
import pytest

from app.discord.client import point_discord_py_at
from app.sandbox.builtin import default_fixture
from app.sandbox.server import Sandbox

# Long enough that a latency of one whole interval (the symptom) is far above a second.
INTERVAL_MS = 1500
ACKS = 4


async def heartbeat_latencies(ack_delay_ms: int) -> list[float]:
    """client.latency after each of the first ACKS HEARTBEAT_ACKs, on a loop that the sandbox
    and discord.py share, as in `polly demo`."""
    sandbox = Sandbox(
        default_fixture(), heartbeat_interval_ms=INTERVAL_MS, heartbeat_ack_delay_ms=ack_delay_ms
    )
    await sandbox.start("127.0.0.1", 0)
    point_discord_py_at(sandbox.api_url, sandbox.gateway_url)
    client = discord.Client(
        intents=discord.Intents.default(), guild_ready_timeout=0.1, enable_debug_events=True
    )
    latencies: list[float] = []
    enough = asyncio.Event()

    @client.event
    async def on_socket_raw_receive(message: str) -> None:
        if json.loads(message)["op"] == 11:
            # discord.py records the ACK before it dispatches the raw frame.
            latencies.append(client.latency)
            if len(latencies) >= ACKS:
                enough.set()

    runner = asyncio.create_task(client.start(sandbox.fixture.bot.token))
    try:
        await asyncio.wait_for(enough.wait(), timeout=(ACKS + 2) * INTERVAL_MS / 1000)
    finally:
        await client.close()
        await asyncio.wait_for(runner, timeout=10)
        await sandbox.stop()
    return latencies


async def test_discord_py_measures_the_round_trip_not_the_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="discord"):
        latencies = await heartbeat_latencies(ack_delay_ms=40)
    # About the sandbox's ACK delay (40 ms), as from Discord, and far below an interval.
    assert all(0.035 <= latency < 1 for latency in latencies), latencies
    assert not [r for r in caplog.records if "behind" in r.getMessage()]
