"""An unmodified discord.Client against the sandbox, over real loopback sockets."""

from __future__ import annotations

import time

import aiohttp
import discord
import pytest

from app.sandbox.server import Sandbox
from tests.conftest import SandboxHttp

pytestmark = pytest.mark.timeout(60)


def guild_named(client: discord.Client, name: str) -> discord.Guild:
    guild = discord.utils.get(client.guilds, name=name)
    if guild is None:
        raise LookupError(f"the bot has no guild named {name!r}")
    return guild


async def test_ready_and_guild_create_carry_the_fixture(bot: discord.Client, sandbox: Sandbox) -> None:
    fixture = sandbox.fixture
    assert bot.user is not None and bot.user.id == fixture.bot.id
    expected = {g.name for g in fixture.guilds if any(m.user_id == fixture.bot.id for m in g.members)}
    assert {guild.name for guild in bot.guilds} == expected
    assert "Elsewhere" not in expected  # the bot is not a member there

    for model in fixture.guilds:
        if model.name not in expected:
            continue
        guild = guild_named(bot, model.name)
        assert {role.id: role.name for role in guild.roles} == {role.id: role.name for role in model.roles}
        assert {channel.id for channel in guild.channels} == {channel.id for channel in model.channels}
        bot_member = next(m for m in model.members if m.user_id == fixture.bot.id)
        assert guild.me is not None
        assert {role.id for role in guild.me.roles} == {*bot_member.roles, guild.id}

    big = guild_named(bot, "Big Guild")
    assert len(big.roles) == 250

    playground = guild_named(bot, "Polly Playground")
    announcements = discord.utils.get(playground.text_channels, name="announcements")
    assert announcements is not None
    overwrite = announcements.overwrites_for(playground.me)
    assert overwrite.mention_everyone is False
    assert not announcements.permissions_for(playground.me).mention_everyone
    general = discord.utils.get(playground.text_channels, name="general")
    assert general is not None and general.permissions_for(playground.me).mention_everyone


async def test_fetch_roles_returns_the_fixture_roles(bot: discord.Client, sandbox: Sandbox) -> None:
    guild = guild_named(bot, "Big Guild")
    roles = await guild.fetch_roles()
    model = next(g for g in sandbox.fixture.guilds if g.id == guild.id)
    assert sorted((r.id, r.name, r.position, r.mentionable) for r in roles) == sorted(
        (r.id, r.name, r.position, r.mentionable) for r in model.roles
    )


async def test_role_create_update_delete_reach_the_client(bot: discord.Client) -> None:
    guild = guild_named(bot, "Polly Playground")

    created_event = bot.wait_for("guild_role_create", timeout=5)
    role = await guild.create_role(name="Raid Night", mentionable=True, colour=discord.Colour(0x123456))
    created = await created_event
    assert created.id == role.id and created.name == "Raid Night" and created.mentionable

    updated_event = bot.wait_for(
        "guild_role_update", check=lambda before, after: after.id == role.id, timeout=5
    )
    await role.edit(name="Raid Night (EU)", mentionable=False)
    before, after = await updated_event
    assert (before.name, after.name) == ("Raid Night", "Raid Night (EU)")
    assert before.mentionable and not after.mentionable

    deleted_event = bot.wait_for("guild_role_delete", timeout=5)
    await role.delete()
    deleted = await deleted_event
    assert deleted.id == role.id
    assert guild.get_role(role.id) is None


async def test_channel_overwrite_change_reaches_the_client(bot: discord.Client) -> None:
    guild = guild_named(bot, "Polly Playground")
    channel = discord.utils.get(guild.text_channels, name="polls")
    assert channel is not None and guild.me is not None
    assert channel.permissions_for(guild.me).mention_everyone

    event = bot.wait_for("guild_channel_update", timeout=5)
    await channel.set_permissions(guild.me, mention_everyone=False)
    before, after = await event
    assert before.permissions_for(guild.me).mention_everyone
    assert not after.permissions_for(guild.me).mention_everyone


async def test_own_member_update_reaches_a_client_without_the_members_intent(bot: discord.Client) -> None:
    guild = guild_named(bot, "Polly Playground")
    voters = discord.utils.get(guild.roles, name="Poll Voters")
    assert voters is not None and guild.me is not None

    event = bot.wait_for("member_update", timeout=5)
    await guild.me.add_roles(voters)
    before, after = await event
    assert voters not in before.roles and voters in after.roles


async def test_resume_replays_what_happened_while_away(
    bot: discord.Client, sandbox: Sandbox, http: SandboxHttp
) -> None:
    session_before = (await http.control("GET", "/_sandbox/gateway/sessions"))["sessions"]
    assert len(session_before) == 1

    resumed = bot.wait_for("resumed", timeout=10)
    created = bot.wait_for("guild_role_create", timeout=10)
    assert (await http.control("POST", "/_sandbox/gateway/reconnect")) == {"sessions": 1}
    # The sandbox sends nothing more on a connection told to reconnect, so this role's event
    # can only reach the client through the RESUME replay.
    playground = guild_named(bot, "Polly Playground")
    response, role = await http.call("POST", f"/guilds/{playground.id}/roles", json={"name": "While Away"})
    assert response.status == 200

    await resumed
    event = await created
    assert event.id == int(role["id"]) and event.name == "While Away"
    sessions = (await http.control("GET", "/_sandbox/gateway/sessions"))["sessions"]
    assert [s["session_id"] for s in sessions] == [session_before[0]["session_id"]]
    assert sessions[0]["connected"]


async def test_invalid_session_leads_to_a_fresh_identify(bot: discord.Client, http: SandboxHttp) -> None:
    guild = guild_named(bot, "Polly Playground")
    old_session = (await http.control("GET", "/_sandbox/gateway/sessions"))["sessions"][0]["session_id"]

    ready_again = bot.wait_for("ready", timeout=10)
    assert (await http.control("POST", "/_sandbox/gateway/invalidate-session")) == {"sessions": 1}
    response, role = await http.call("POST", f"/guilds/{guild.id}/roles", json={"name": "Made Between"})
    assert response.status == 200
    await ready_again

    sessions = (await http.control("GET", "/_sandbox/gateway/sessions"))["sessions"]
    assert len(sessions) == 1 and sessions[0]["session_id"] != old_session
    # The GUILD_CREATE of the new session carries the role made while no session existed.
    fresh = guild_named(bot, "Polly Playground")
    assert fresh.get_role(int(role["id"])) is not None


async def test_injected_429_is_retried_after_retry_after(bot: discord.Client, http: SandboxHttp) -> None:
    guild = guild_named(bot, "Polly Playground")
    await http.control("POST", "/_sandbox/stats/reset")
    await http.control(
        "POST",
        "/_sandbox/faults",
        {"method": "GET", "route": "/guilds/{guild_id}/roles", "status": 429, "count": 2, "retry_after": 0.2},
    )
    started = time.monotonic()
    roles = await guild.fetch_roles()
    elapsed = time.monotonic() - started

    assert len(roles) == len(guild.roles)
    assert elapsed >= 0.4  # two 429s, each waited out
    stats = await http.control("GET", "/_sandbox/stats")
    assert stats["by_route"]["GET /guilds/{guild_id}/roles"] == 3
    assert stats["total"] == 3
    assert (await http.control("GET", "/_sandbox/faults")) == {"faults": []}


async def test_global_429_is_waited_out(bot: discord.Client, http: SandboxHttp) -> None:
    guild = guild_named(bot, "Polly Playground")
    await http.control(
        "POST",
        "/_sandbox/faults",
        {"method": "*", "route": "*", "status": 429, "global": True, "retry_after": 0.3},
    )
    started = time.monotonic()
    await guild.fetch_roles()
    assert time.monotonic() - started >= 0.3


async def test_discord_py_respects_the_sandbox_buckets(bot: discord.Client, http: SandboxHttp) -> None:
    await http.control("POST", "/_sandbox/ratelimits", {"route_limit": 2, "route_window": 0.5})
    await http.control("POST", "/_sandbox/stats/reset")
    guild = guild_named(bot, "Quiet Corner")
    started = time.monotonic()
    for _ in range(5):
        await guild.fetch_roles()
    # Five calls at two per half second: discord.py read the headers and waited, so no 429
    # was needed (every call counted once).
    assert time.monotonic() - started >= 0.9
    stats = await http.control("GET", "/_sandbox/stats")
    assert stats["by_route"]["GET /guilds/{guild_id}/roles"] == 5


async def test_bad_token_is_refused_at_login(sandbox: Sandbox) -> None:
    client = discord.Client(intents=discord.Intents.default())
    with pytest.raises(discord.LoginFailure):
        await client.login("not-the-token")
    await client.close()


async def test_messages_reach_a_client_with_the_messages_intent(bot: discord.Client) -> None:
    guild = guild_named(bot, "Polly Playground")
    channel = discord.utils.get(guild.text_channels, name="polls")
    voters = discord.utils.get(guild.roles, name="Poll Voters")
    assert channel is not None and voters is not None
    created = bot.wait_for("message", timeout=5)
    sent = await channel.send(f"Vote now, {voters.mention}!")
    received = await created
    assert received.id == sent.id
    assert received.role_mentions == sent.role_mentions == [voters]
    edited = bot.wait_for("message_edit", timeout=5)
    await sent.edit(content="Voting closed.")
    _, after = await edited
    assert after.content == "Voting closed."


async def test_the_permission_algorithm_agrees_with_discord_py(bot: discord.Client, sandbox: Sandbox) -> None:
    """discord.py computes permissions on its own from what the gateway sent; ours (used by the
    sandbox and the API) must agree, including after random overwrite changes."""
    import random

    from app.discord import permissions as perms

    flags = (perms.VIEW_CHANNEL, perms.SEND_MESSAGES, perms.MENTION_EVERYONE, perms.MANAGE_ROLES)
    me = sandbox.fixture.bot.id

    def compare() -> None:
        for guild in bot.guilds:
            state = sandbox.state.guilds[guild.id]
            assert guild.me is not None
            assert guild.me.guild_permissions.value == state.permissions_of(me), guild.name
            for channel in guild.text_channels:
                ours = state.channel_permissions_of(me, state.channels[channel.id])
                theirs = channel.permissions_for(guild.me).value
                assert [bool(ours & f) for f in flags] == [bool(theirs & f) for f in flags], channel.name

    compare()
    rng = random.Random(4)
    guild = guild_named(bot, "Polly Playground")
    held = sandbox.state.guilds[guild.id].permissions_of(me)
    grantable = [f for f in (perms.VIEW_CHANNEL, perms.SEND_MESSAGES, perms.MENTION_EVERYONE) if held & f]
    targets = [(r.id, 0) for r in guild.roles if r < guild.me.top_role] + [(me, 1)]
    applied, refused = 0, 0
    for _ in range(15):
        channel = rng.choice([c for c in guild.text_channels if c.name != "staff"])
        target, kind = rng.choice(targets)
        allow = sum(f for f in grantable if rng.random() < 0.3)
        deny = sum(f for f in grantable if rng.random() < 0.3 and not allow & f)
        if target == me and deny & perms.VIEW_CHANNEL:
            deny &= ~perms.VIEW_CHANNEL  # keep the channel visible, so the next changes can be made
        updated = bot.wait_for("guild_channel_update", timeout=5)
        path = f"{sandbox.api_url}/channels/{channel.id}/permissions/{target}"
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bot {sandbox.fixture.bot.token}"}) as session,
            session.put(path, json={"type": kind, "allow": str(allow), "deny": str(deny)}) as response,
        ):
            if response.status != 204:
                # The bot lost MANAGE_ROLES there: refused, as Discord refuses it.
                assert response.status == 403, await response.text()
                assert (await response.json())["code"] == 50013
                updated.close()
                refused += 1
                continue
        await updated
        compare()
        applied += 1
    assert applied + refused == 15
    assert applied >= 10, f"only {applied} of 15 changes applied: the comparison checked too little"
