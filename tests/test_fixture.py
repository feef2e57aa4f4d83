"""The fixtures that ship with the sandbox cover what the product must get right."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.discord import permissions as perms
from app.sandbox.builtin import default_fixture, generated_fixture
from app.sandbox.fixture import Fixture
from app.sandbox.state import SandboxState


def test_the_default_fixture_covers_the_cases() -> None:
    fixture = default_fixture()
    state = SandboxState(fixture)
    bot = fixture.bot.id
    by_name = {guild.guild.name: guild for guild in state.guilds.values()}

    assert max(len(guild.roles) for guild in state.guilds.values()) == 250
    assert any(not guild_has_bot for guild_has_bot in (bot in g.members for g in state.guilds.values()))
    roles = [role for guild in fixture.guilds for role in guild.roles]
    assert any(r.mentionable for r in roles) and any(not r.mentionable and r.position > 0 for r in roles)
    assert any(r.tags and r.tags.bot_id for r in roles) and any(
        r.tags and r.tags.integration_id for r in roles
    )

    assert perms.has(by_name["Polly Playground"].permissions_of(bot), perms.MENTION_EVERYONE)
    assert not perms.has(by_name["Quiet Corner"].permissions_of(bot), perms.MENTION_EVERYONE)
    assert by_name["Polly HQ"].permissions_of(bot) == perms.ALL

    playground = by_name["Polly Playground"]
    announcements = next(c for c in playground.channels.values() if c.name == "announcements")
    assert not perms.has(playground.channel_permissions_of(bot, announcements), perms.MENTION_EVERYONE)
    assert len(fixture.users) >= 3


def test_generated_fixtures_are_valid_and_repeatable() -> None:
    first = generated_fixture(50, seed=7)
    assert first == generated_fixture(50, seed=7)
    assert len(first.guilds) == 50
    assert all(len(guild.roles) <= 250 for guild in first.guilds)
    assert len({len(guild.roles) for guild in first.guilds}) > 5  # sizes vary
    with pytest.raises(ValueError, match="at least one guild"):
        generated_fixture(0)


def test_generated_guilds_spread_over_shards() -> None:
    fixture = generated_fixture(100, shards=4)
    shards = {(guild.id >> 22) % 4 for guild in fixture.guilds}
    assert shards == {0, 1, 2, 3}


def test_inconsistent_fixtures_are_rejected_with_the_reason() -> None:
    document = default_fixture().model_dump(mode="json")
    document["guilds"][0]["members"][0]["roles"].append("42")
    with pytest.raises(ValidationError, match="unknown roles"):
        Fixture.model_validate(document)
