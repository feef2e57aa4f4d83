"""The service's one door to Discord REST, against the sandbox."""

from __future__ import annotations

import asyncio

import pytest

from app.discord.client import (
    DiscordForbidden,
    DiscordNotFound,
    DiscordRest,
    DiscordUnauthorized,
    DiscordUnreachable,
)
from app.sandbox.fixture import Fixture
from app.sandbox.server import Sandbox
from tests.conftest import SandboxHttp, guild_id, wait_until


def rest_for(sandbox: Sandbox, **options: float) -> DiscordRest:
    return DiscordRest(
        api_url=sandbox.api_url, gateway_url=sandbox.gateway_url, token=sandbox.fixture.bot.token, **options
    )


async def test_reads_what_the_product_needs(sandbox: Sandbox, fixture: Fixture) -> None:
    playground = guild_id(fixture, "Polly Playground")
    async with rest_for(sandbox) as rest:
        assert rest.bot_user_id == fixture.bot.id
        roles = await rest.guild_roles(playground)
        assert {int(r["id"]) for r in roles} == {r.id for r in fixture.guilds[0].roles}
        channels = await rest.guild_channels(playground)
        assert "announcements" in {c["name"] for c in channels}
        member = await rest.member(playground, fixture.bot.id)
        assert member["user"]["id"] == str(fixture.bot.id)
        guild = await rest.guild(playground)
        assert guild["owner_id"] == str(fixture.guilds[0].owner_id)
        gateway = await rest.gateway_bot()
        assert gateway["shards"] == 1 and gateway["url"] == sandbox.gateway_url


async def test_errors_say_what_went_wrong(sandbox: Sandbox, fixture: Fixture, http: SandboxHttp) -> None:
    async with rest_for(sandbox, timeout=0.5) as rest:
        with pytest.raises(DiscordNotFound) as unknown:
            await rest.guild_roles(1)
        assert unknown.value.code == 10004
        with pytest.raises(DiscordForbidden):
            await rest.guild_roles(guild_id(fixture, "Elsewhere"))

        playground = guild_id(fixture, "Polly Playground")
        roles_route = "/guilds/{guild_id}/roles"
        await http.control("POST", "/_sandbox/faults", {"method": "GET", "route": roles_route, "status": 503})
        with pytest.raises(DiscordUnreachable):
            await rest.guild_roles(playground)

        # A minute late: only the client's own timeout ends the call before the test's.
        await http.control(
            "POST", "/_sandbox/faults", {"method": "GET", "route": "/guilds/{guild_id}", "latency_ms": 60_000}
        )
        with pytest.raises(DiscordUnreachable, match="in time"):
            async with asyncio.timeout(30):
                await rest.guild(playground)

        # A 429 longer than discord.py's bound fails at once; a shorter one is bounded by the timeout.
        await http.control(
            "POST",
            "/_sandbox/faults",
            {"method": "GET", "route": roles_route, "status": 429, "retry_after": 60},
        )
        with pytest.raises(DiscordUnreachable, match="rate limited"):
            await rest.guild_roles(playground)
        await http.control("POST", "/_sandbox/stats/reset")
        await http.control(
            "POST",
            "/_sandbox/faults",
            {"method": "GET", "route": roles_route, "status": 429, "retry_after": 1, "global": True},
        )
        with pytest.raises(DiscordUnreachable, match="in time"):
            await rest.guild_roles(playground)

        # The timed-out call waits out the global limit and retries in the background; after
        # that, the same client is not stuck behind discord.py's global lock.
        async def retried() -> bool:
            stats = await http.control("GET", "/_sandbox/stats")
            return bool(stats["by_route"].get("GET /guilds/{guild_id}/roles", 0) >= 2)

        await wait_until(retried, within=5)
        assert await rest.guild_roles(playground)


async def test_a_wrong_token_is_refused(sandbox: Sandbox) -> None:
    rest = DiscordRest(api_url=sandbox.api_url, token="wrong")
    with pytest.raises(DiscordUnauthorized, match="POLLY_DISCORD_TOKEN"):
        await rest.open()


async def test_an_unreachable_discord_is_unavailable() -> None:
    rest = DiscordRest(api_url="http://127.0.0.1:9/api/v10", token="x", timeout=2)
    with pytest.raises(DiscordUnreachable):
        await rest.open()
