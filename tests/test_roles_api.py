"""The roles API over real HTTP: the sandbox as Discord, a real Redis, the app under uvicorn."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.sandbox.fixture import Fixture
from tests.conftest import RunningApi, channel_id, guild_id, role_id

ROLE_FIELDS = (
    "id name color colors { primaryColor secondaryColor tertiaryColor } position hoist mentionable managed"
)
ROLE_FIELDS += " icon unicodeEmoji permissions tags { botId integrationId premiumSubscriber }"

PINGABLE = "query($g: ID!, $c: ID) { pingableRoles(guildId: $g, channelId: $c) { name } }"
VALIDATE = """query($g: ID!, $r: [ID!]!, $c: ID) {
  validateRoles(guildId: $g, roleIds: $r, channelId: $c) { roleId valid canPing reason role { name } }
}"""


def names(body: dict[str, Any], field: str = "pingableRoles") -> list[str]:
    assert "errors" not in body, body
    return [role["name"] for role in body["data"][field]]


async def test_guild_roles_lists_every_role_highest_first(api: RunningApi, fixture: Fixture) -> None:
    playground = guild_id(fixture, "Polly Playground")
    status, body = await api.query(f'{{ guildRoles(guildId: "{playground}") {{ {ROLE_FIELDS} }} }}')
    assert status == 200 and "errors" not in body
    roles = body["data"]["guildRoles"]
    model = next(g for g in fixture.guilds if g.id == playground)
    assert [r["name"] for r in roles] == [r.name for r in sorted(model.roles, key=lambda r: -r.position)]
    assert roles[-1]["name"] == "@everyone" and roles[-1]["id"] == str(playground)
    by_name = {r["name"]: r for r in roles}
    assert by_name["Polly"]["tags"] == {
        "botId": str(fixture.bot.id),
        "integrationId": None,
        "premiumSubscriber": False,
    }
    assert by_name["Server Booster"]["tags"]["premiumSubscriber"] is True
    assert by_name["Event Pings"]["unicodeEmoji"] == "🎉"
    assert by_name["Admins"]["colors"]["primaryColor"] == by_name["Admins"]["color"] == 0xE74C3C
    assert by_name["Admins"]["permissions"] == "8"


@pytest.mark.parametrize(
    ("guild", "channel", "expected"),
    [
        # The bot has MENTION_EVERYONE: every role but @everyone and the managed ones.
        ("Polly Playground", None, ["Admins", "Moderators", "Event Pings", "Poll Voters", "Quiet Folk"]),
        ("Polly Playground", "general", ["Admins", "Moderators", "Event Pings", "Poll Voters", "Quiet Folk"]),
        # #announcements denies the bot MENTION_EVERYONE: only the mentionable roles.
        ("Polly Playground", "announcements", ["Moderators", "Event Pings", "Poll Voters"]),
        # The bot cannot see #staff: nothing.
        ("Polly Playground", "staff", []),
        # No MENTION_EVERYONE: the mentionable roles.
        ("Quiet Corner", None, ["Helpers", "Artists"]),
        # Administrator: managed roles too.
        ("Polly HQ", None, ["Polly Admin", "Staff", "Retired", "Patreon"]),
        ("Polly HQ", "locked", ["Polly Admin", "Staff", "Retired", "Patreon"]),
    ],
)
async def test_pingable_roles(
    api: RunningApi, fixture: Fixture, guild: str, channel: str | None, expected: list[str]
) -> None:
    variables = {"g": str(guild_id(fixture, guild))}
    if channel is not None:
        variables["c"] = str(channel_id(fixture, guild, channel))
    status, body = await api.query(PINGABLE, variables)
    assert status == 200
    assert names(body) == expected


async def test_pingable_roles_of_the_biggest_guild(api: RunningApi, fixture: Fixture) -> None:
    big = guild_id(fixture, "Big Guild")
    _, body = await api.query(PINGABLE, {"g": str(big)})
    pingable = names(body)
    assert len(pingable) == 124  # the mentionable half of Role 001..248
    assert all(int(name.split()[1]) % 2 == 0 for name in pingable)


async def test_validate_roles_answers_each_id_in_order(api: RunningApi, fixture: Fixture) -> None:
    guild = "Quiet Corner"
    ids = [
        role_id(fixture, guild, "Artists"),
        guild_id(fixture, guild),
        role_id(fixture, guild, "Readers"),
        999,
        role_id(fixture, guild, "Polly"),
        role_id(fixture, guild, "Artists"),
    ]
    status, body = await api.query(VALIDATE, {"g": str(guild_id(fixture, guild)), "r": [str(i) for i in ids]})
    assert status == 200 and "errors" not in body
    results = [(r["roleId"], r["valid"], r["canPing"], r["reason"]) for r in body["data"]["validateRoles"]]
    assert results == [
        (str(ids[0]), True, True, None),
        (str(ids[1]), True, False, "EVERYONE"),
        (str(ids[2]), True, False, "NOT_MENTIONABLE"),
        ("999", False, False, "NOT_FOUND"),
        (str(ids[4]), True, False, "MANAGED"),
        (str(ids[5]), True, True, None),
    ]
    assert body["data"]["validateRoles"][0]["role"] == {"name": "Artists"}
    assert body["data"]["validateRoles"][3]["role"] is None


async def test_validate_roles_in_a_channel(api: RunningApi, fixture: Fixture) -> None:
    guild = "Polly Playground"
    quiet = role_id(fixture, guild, "Quiet Folk")
    voters = role_id(fixture, guild, "Poll Voters")
    variables = {"g": str(guild_id(fixture, guild)), "r": [str(quiet), str(voters)]}
    _, everywhere = await api.query(VALIDATE, variables)
    assert [r["canPing"] for r in everywhere["data"]["validateRoles"]] == [True, True]

    variables["c"] = str(channel_id(fixture, guild, "announcements"))
    _, announcements = await api.query(VALIDATE, variables)
    assert [(r["canPing"], r["reason"]) for r in announcements["data"]["validateRoles"]] == [
        (False, "NOT_MENTIONABLE"),
        (True, None),
    ]
    variables["c"] = str(channel_id(fixture, guild, "staff"))
    _, staff = await api.query(VALIDATE, variables)
    assert {r["reason"] for r in staff["data"]["validateRoles"]} == {"CHANNEL_NOT_VISIBLE"}


@pytest.mark.parametrize(
    ("query", "variables", "code", "words"),
    [
        (PINGABLE, {"g": "not-a-number"}, "BAD_USER_INPUT", "guildId"),
        (PINGABLE, {"g": "-5"}, "BAD_USER_INPUT", "guildId"),
        (PINGABLE, {"g": "1" * 21}, "BAD_USER_INPUT", "guildId"),
        (PINGABLE, {"g": "²"}, "BAD_USER_INPUT", "guildId"),
        (PINGABLE, {"g": "\uff11\uff12\uff13"}, "BAD_USER_INPUT", "guildId"),  # fullwidth digits
        (VALIDATE, {"g": "{playground}", "r": ["1"] * 251}, "BAD_USER_INPUT", "at most 250"),
        (VALIDATE, {"g": "{playground}", "r": ["1", "x"]}, "BAD_USER_INPUT", "roleIds[1]"),
        (PINGABLE, {"g": "12345"}, "NOT_FOUND", "does not exist"),
        (PINGABLE, {"g": "{elsewhere}"}, "NOT_FOUND", "not a member"),
        (PINGABLE, {"g": "{playground}", "c": "{quiet_general}"}, "BAD_USER_INPUT", "not a channel of guild"),
        (PINGABLE, {"g": "{playground}", "c": "{category}"}, "BAD_USER_INPUT", "category"),
        (PINGABLE, {"g": "{playground}", "c": "oops"}, "BAD_USER_INPUT", "channelId"),
    ],
)
async def test_bad_input_gets_a_code_not_a_500(
    api: RunningApi, fixture: Fixture, query: str, variables: dict[str, Any], code: str, words: str
) -> None:
    ids = {
        "playground": guild_id(fixture, "Polly Playground"),
        "elsewhere": guild_id(fixture, "Elsewhere"),
        "quiet_general": channel_id(fixture, "Quiet Corner", "general"),
        "category": channel_id(fixture, "Polly Playground", "Text Channels"),
    }
    filled = {k: (v.format(**ids) if isinstance(v, str) else v) for k, v in variables.items()}
    status, body = await api.query(query, filled)
    assert status == 200
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == code
    assert words in error["message"]
    assert "Traceback" not in str(body) and 'File "' not in str(body)


async def test_answers_come_from_the_cache_after_the_first(api: RunningApi, fixture: Fixture) -> None:
    playground = str(guild_id(fixture, "Polly Playground"))
    await api.query(PINGABLE, {"g": playground})
    assert api.rest_calls() == 3  # one fill: the guild with its roles, the bot's member, the channels
    api.sandbox.stats.reset()
    for _ in range(5):
        await api.query(PINGABLE, {"g": playground})  # the same request: the response cache
    voters = role_id(fixture, "Polly Playground", "Poll Voters")
    await api.query(VALIDATE, {"g": playground, "r": [str(voters)]})  # another request: the role cache
    await api.query(f'{{ guildRoles(guildId: "{playground}") {{ name }} }}')
    assert api.rest_calls() == 0


async def test_the_seed_keys_exist_with_their_ttl(api_factory: Any, fixture: Fixture) -> None:
    api = await api_factory(cache_prefix="polly:", role_cache_ttl=1800)
    playground = guild_id(fixture, "Polly Playground")
    voters = role_id(fixture, "Polly Playground", "Poll Voters")
    await api.query(VALIDATE, {"g": str(playground), "r": [str(voters)]})
    redis = api.services.redis
    tag = f"{{{playground}}}"
    for key in (f"polly:guild_roles_ping:{tag}", f"polly:role_validation:{tag}:{voters}"):
        assert await redis.exists(key), key
        assert 1790 <= await redis.ttl(key) <= 1800
    assert not await redis.exists(f"guild_roles_ping:{{{playground}}}")  # the prefix is applied
    cached = await api.services.role_cache.get_cached_role_validation(playground, voters)
    assert cached is not None and cached["can_ping"] is True


async def test_one_mget_and_one_fill_per_guild_for_twenty_validations(
    api: RunningApi, fixture: Fixture
) -> None:
    counts = {"Polly Playground": 8, "Quiet Corner": 5, "Big Guild": 7}
    parts = []
    for index, (name, count) in enumerate(counts.items()):
        model = next(g for g in fixture.guilds if g.name == name)
        ids = json.dumps([str(role.id) for role in model.roles][:count])
        parts.append(f'g{index}: validateRoles(guildId: "{model.id}", roleIds: {ids}) {{ roleId canPing }}')
    redis = api.services.redis
    await redis.config_resetstat()
    status, body = await api.query("{ " + " ".join(parts) + " }")
    assert status == 200 and "errors" not in body
    assert sum(len(body["data"][f"g{i}"]) for i in range(3)) == 20
    stats = await redis.info("commandstats")
    assert stats["cmdstat_mget"]["calls"] == 1
    assert api.calls_to("GET /guilds/{guild_id}") == 3
    assert api.rest_calls() == 9


async def test_one_request_reads_a_bounded_number_of_guilds(api_factory: Any, fixture: Fixture) -> None:
    api: RunningApi = await api_factory(max_guilds_per_request=3)
    ids = [guild_id(fixture, name) for name in ("Polly Playground", "Quiet Corner", "Polly HQ")]
    fields = " ".join(f'g{n}: pingableRoles(guildId: "{g}") {{ id }}' for n, g in enumerate(ids))
    status, body = await api.query("{ " + fields + " }")
    assert status == 200 and "errors" not in body
    fourth = guild_id(fixture, "Big Guild")
    status, body = await api.query("{ " + fields + f' more: pingableRoles(guildId: "{fourth}") {{ id }} }}')
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "at most 3 guilds" in body["errors"][0]["message"]
