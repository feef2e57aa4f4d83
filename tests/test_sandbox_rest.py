"""The sandbox's REST API over real HTTP: Discord's shapes, errors, checks and rate limits."""

from __future__ import annotations

import time

import pytest

from app.sandbox.fixture import Fixture
from tests.conftest import SandboxHttp, channel_id, guild_id, role_id

ROLE_KEYS = {
    "id", "name", "color", "colors", "hoist", "icon", "unicode_emoji", "position",
    "permissions", "managed", "mentionable", "flags",
}  # fmt: skip


async def test_roles_are_shaped_as_discord_shapes_them(http: SandboxHttp, fixture: Fixture) -> None:
    playground = guild_id(fixture, "Polly Playground")
    response, roles = await http.call("GET", f"/guilds/{playground}/roles")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    by_name = {role["name"]: role for role in roles}
    for role in roles:
        assert set(role) >= ROLE_KEYS
        assert isinstance(role["permissions"], str) and role["permissions"].isdigit()
        assert set(role["colors"]) == {"primary_color", "secondary_color", "tertiary_color"}
    assert by_name["@everyone"]["id"] == str(playground)
    assert "tags" not in by_name["Poll Voters"]
    assert by_name["Polly"]["tags"] == {"bot_id": str(fixture.bot.id)}
    assert by_name["Polly"]["managed"] is True
    assert set(by_name["Twitch Subscriber"]["tags"]) == {"integration_id"}
    assert by_name["Server Booster"]["tags"] == {"premium_subscriber": None}
    assert by_name["Event Pings"]["unicode_emoji"] == "🎉"


async def test_every_call_needs_the_bot_token(http: SandboxHttp, fixture: Fixture) -> None:
    playground = guild_id(fixture, "Polly Playground")
    for headers in ({}, {"Authorization": "Bot wrong"}, {"Authorization": f"Bearer {fixture.bot.token}"}):
        response, body = await http.call("GET", f"/guilds/{playground}/roles", headers=headers, auth=False)
        assert response.status == 401
        assert body == {"message": "401: Unauthorized", "code": 0}
    response, body = await http.call("GET", "/gateway", auth=False)
    assert response.status == 200 and body["url"] == http.sandbox.gateway_url


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("GET", "/guilds/1/roles", 10004),
        ("GET", "/guilds/{playground}/roles/1", 10011),
        ("PATCH", "/guilds/{playground}/roles/1", 10011),
        ("DELETE", "/guilds/{playground}/roles/1", 10011),
        ("GET", "/guilds/{playground}/members/1", 10013),
        ("GET", "/guilds/{playground}/members/{erin}", 10007),
        ("PATCH", "/channels/1", 10003),
        ("POST", "/channels/1/messages", 10003),
        ("PATCH", "/channels/{general}/messages/1", 10008),
    ],
)
async def test_unknown_ids_get_discords_codes(
    http: SandboxHttp, fixture: Fixture, method: str, path: str, code: int
) -> None:
    erin = next(user.id for user in fixture.users if user.username == "erin")
    path = path.format(
        playground=guild_id(fixture, "Polly Playground"),
        erin=erin,
        general=channel_id(fixture, "Polly Playground", "general"),
    )
    response, body = await http.call(method, path, json={"content": "x"} if method != "GET" else None)
    assert response.status == 404
    assert body["code"] == code and body["message"].startswith("Unknown ")


async def test_a_guild_without_the_bot_is_missing_access(http: SandboxHttp, fixture: Fixture) -> None:
    response, body = await http.call("GET", f"/guilds/{guild_id(fixture, 'Elsewhere')}/roles")
    assert (response.status, body) == (403, {"message": "Missing Access", "code": 50001})


async def test_unknown_routes_and_methods(http: SandboxHttp) -> None:
    response, body = await http.call("GET", "/no/such/route")
    assert (response.status, body) == (404, {"message": "404: Not Found", "code": 0})
    response, body = await http.call("PUT", "/users/@me")
    assert (response.status, body) == (405, {"message": "405: Method Not Allowed", "code": 0})
    for bad in ("not-a-snowflake", "²"):
        response, body = await http.call("GET", f"/guilds/{bad}/roles")
        assert response.status == 400 and body["code"] == 50035
    assert body["errors"]["guild_id"]["_errors"][0]["code"] == "NUMBER_TYPE_COERCE"


async def test_invalid_bodies_get_50035_with_field_errors(http: SandboxHttp, fixture: Fixture) -> None:
    playground = guild_id(fixture, "Polly Playground")
    response, body = await http.call(
        "POST", f"/guilds/{playground}/roles", json={"name": "x" * 101, "color": "red", "hoist": "yes"}
    )
    assert response.status == 400
    assert body["code"] == 50035 and body["message"] == "Invalid Form Body"
    assert body["errors"]["name"]["_errors"][0]["code"] == "BASE_TYPE_BAD_LENGTH"
    assert body["errors"]["color"]["_errors"][0]["code"] == "NUMBER_TYPE_COERCE"
    assert body["errors"]["hoist"]["_errors"][0]["code"] == "BASE_TYPE_BOOLEAN"

    general = channel_id(fixture, "Polly Playground", "general")
    response, body = await http.call(
        "PATCH", f"/channels/{general}", json={"permission_overwrites": [{"id": "abc", "type": 7}]}
    )
    assert response.status == 400
    overwrite_errors = body["errors"]["permission_overwrites"]["0"]
    assert set(overwrite_errors) == {"id", "type"}

    async with http.session.post(
        f"{http.sandbox.api_url}/guilds/{playground}/roles", data=b"{not json", headers=http.auth
    ) as raw:
        assert raw.status == 400
        assert await raw.json() == {"message": "The request body contains invalid JSON.", "code": 50109}

    response, body = await http.call("POST", f"/channels/{general}/messages", json={"content": ""})
    assert (response.status, body["code"]) == (400, 50006)


async def test_missing_permissions_get_50013(http: SandboxHttp, fixture: Fixture) -> None:
    quiet = guild_id(fixture, "Quiet Corner")
    response, body = await http.call("POST", f"/guilds/{quiet}/roles", json={"name": "Nope"})
    assert (response.status, body) == (403, {"message": "Missing Permissions", "code": 50013})

    playground = guild_id(fixture, "Polly Playground")
    admins = role_id(fixture, "Polly Playground", "Admins")  # above the bot's highest role
    response, body = await http.call("PATCH", f"/guilds/{playground}/roles/{admins}", json={"name": "Mine"})
    assert (response.status, body["code"]) == (403, 50013)

    booster = role_id(fixture, "Polly Playground", "Server Booster")  # managed
    response, body = await http.call("DELETE", f"/guilds/{playground}/roles/{booster}")
    assert (response.status, body["code"]) == (403, 50013)

    # Granting a permission the bot lacks is refused too.
    response, body = await http.call(
        "POST", f"/guilds/{playground}/roles", json={"name": "Bans", "permissions": str(1 << 2)}
    )
    assert (response.status, body["code"]) == (403, 50013)

    # The bot cannot see #staff at all.
    staff = channel_id(fixture, "Polly Playground", "staff")
    response, body = await http.call("POST", f"/channels/{staff}/messages", json={"content": "hi"})
    assert (response.status, body["code"]) == (403, 50001)


async def test_role_changes_show_in_later_reads(http: SandboxHttp, fixture: Fixture) -> None:
    playground = guild_id(fixture, "Polly Playground")
    response, role = await http.call(
        "POST",
        f"/guilds/{playground}/roles",
        json={"name": "Night Owls", "mentionable": True, "color": 0x336699},
    )
    assert response.status == 200
    assert (role["name"], role["mentionable"], role["color"], role["position"]) == (
        "Night Owls",
        True,
        0x336699,
        1,
    )

    response, updated = await http.call(
        "PATCH",
        f"/guilds/{playground}/roles/{role['id']}",
        json={"name": "Early Birds", "colors": {"primary_color": 1, "secondary_color": 2}},
    )
    assert response.status == 200
    assert (updated["name"], updated["color"], updated["colors"]["secondary_color"]) == ("Early Birds", 1, 2)

    response, _ = await http.call("DELETE", f"/guilds/{playground}/roles/{role['id']}")
    assert response.status == 204
    _, roles = await http.call("GET", f"/guilds/{playground}/roles")
    assert role["id"] not in {r["id"] for r in roles}


async def test_member_roles_can_be_changed_below_the_bot(http: SandboxHttp, fixture: Fixture) -> None:
    playground = guild_id(fixture, "Polly Playground")
    dave = next(user.id for user in fixture.users if user.username == "dave")
    voters = role_id(fixture, "Polly Playground", "Poll Voters")
    response, member = await http.call(
        "PATCH", f"/guilds/{playground}/members/{dave}", json={"roles": [str(voters)]}
    )
    assert response.status == 200 and member["roles"] == [str(voters)]
    assert member["user"]["id"] == str(dave)

    admins = role_id(fixture, "Polly Playground", "Admins")
    response, body = await http.call(
        "PATCH", f"/guilds/{playground}/members/{dave}", json={"roles": [str(admins)]}
    )
    assert (response.status, body["code"]) == (403, 50013)


async def test_channel_overwrites_can_be_replaced(http: SandboxHttp, fixture: Fixture) -> None:
    polls = channel_id(fixture, "Polly Playground", "polls")
    voters = role_id(fixture, "Polly Playground", "Poll Voters")
    overwrite = {"id": str(voters), "type": 0, "allow": "0", "deny": str(1 << 17)}
    response, channel = await http.call(
        "PATCH", f"/channels/{polls}", json={"permission_overwrites": [overwrite]}
    )
    assert response.status == 200
    assert channel["permission_overwrites"] == [overwrite]
    assert channel["guild_id"] == str(guild_id(fixture, "Polly Playground"))


@pytest.mark.parametrize(
    ("guild_name", "channel_name", "allowed_mentions", "expected"),
    [
        # The bot has MENTION_EVERYONE in #polls: it pings mentionable and other roles alike.
        ("Polly Playground", "polls", None, ["Poll Voters", "Quiet Folk"]),
        # #announcements denies the bot MENTION_EVERYONE: only the mentionable role pings.
        ("Polly Playground", "announcements", None, ["Poll Voters"]),
        # allowed_mentions with an empty parse suppresses every role mention.
        ("Polly Playground", "polls", {"parse": []}, []),
        # An explicit roles list lets exactly those through.
        ("Polly Playground", "polls", {"roles": ["{Quiet Folk}"]}, ["Quiet Folk"]),
        ("Polly Playground", "polls", {"parse": ["roles"]}, ["Poll Voters", "Quiet Folk"]),
        ("Polly Playground", "polls", {"parse": ["users"]}, []),
    ],
)
async def test_allowed_mentions_decide_mention_roles(
    http: SandboxHttp,
    fixture: Fixture,
    guild_name: str,
    channel_name: str,
    allowed_mentions: dict[str, list[str]] | None,
    expected: list[str],
) -> None:
    names = ["Poll Voters", "Quiet Folk"]
    ids = {name: role_id(fixture, guild_name, name) for name in names}
    content = "Vote! " + " ".join(f"<@&{ids[name]}>" for name in names)
    body: dict[str, object] = {"content": content}
    if allowed_mentions is not None:
        body["allowed_mentions"] = {
            key: [str(ids[v[1:-1]]) if v.startswith("{") else v for v in values]
            for key, values in allowed_mentions.items()
        }
    channel = channel_id(fixture, guild_name, channel_name)
    response, message = await http.call("POST", f"/channels/{channel}/messages", json=body)
    assert response.status == 200
    assert message["content"] == content
    assert message["mention_roles"] == [str(ids[name]) for name in expected]


async def test_non_mentionable_roles_need_mention_everyone(http: SandboxHttp, fixture: Fixture) -> None:
    helpers = role_id(fixture, "Quiet Corner", "Helpers")
    readers = role_id(fixture, "Quiet Corner", "Readers")
    general = channel_id(fixture, "Quiet Corner", "general")
    response, message = await http.call(
        "POST", f"/channels/{general}/messages", json={"content": f"<@&{helpers}> <@&{readers}> @everyone"}
    )
    assert response.status == 200
    assert message["mention_roles"] == [str(helpers)]
    assert message["mention_everyone"] is False


async def test_allowed_mentions_parse_and_roles_are_exclusive(http: SandboxHttp, fixture: Fixture) -> None:
    polls = channel_id(fixture, "Polly Playground", "polls")
    response, body = await http.call(
        "POST",
        f"/channels/{polls}/messages",
        json={"content": "hi", "allowed_mentions": {"parse": ["roles"], "roles": ["1"]}},
    )
    assert response.status == 400 and body["code"] == 50035
    assert "parse" in body["errors"]["allowed_mentions"]


async def test_messages_can_be_edited_and_recompute_mentions(http: SandboxHttp, fixture: Fixture) -> None:
    polls = channel_id(fixture, "Polly Playground", "polls")
    voters = role_id(fixture, "Polly Playground", "Poll Voters")
    _, message = await http.call("POST", f"/channels/{polls}/messages", json={"content": "Poll opens soon"})
    assert message["mention_roles"] == [] and message["edited_timestamp"] is None
    response, edited = await http.call(
        "PATCH", f"/channels/{polls}/messages/{message['id']}", json={"content": f"Poll open <@&{voters}>"}
    )
    assert response.status == 200
    assert edited["mention_roles"] == [str(voters)] and edited["edited_timestamp"] is not None


async def test_route_buckets_report_and_enforce_limits(http: SandboxHttp, fixture: Fixture) -> None:
    await http.control("POST", "/_sandbox/ratelimits", {"route_limit": 2, "route_window": 5})
    playground = guild_id(fixture, "Polly Playground")
    quiet = guild_id(fixture, "Quiet Corner")
    first, _ = await http.call("GET", f"/guilds/{playground}/roles")
    second, _ = await http.call("GET", f"/guilds/{playground}/roles")
    third, body = await http.call("GET", f"/guilds/{playground}/roles")
    assert first.headers["X-RateLimit-Limit"] == "2"
    assert (first.headers["X-RateLimit-Remaining"], second.headers["X-RateLimit-Remaining"]) == ("1", "0")
    assert first.headers["X-RateLimit-Bucket"] == second.headers["X-RateLimit-Bucket"]
    assert 0 < float(second.headers["X-RateLimit-Reset-After"]) <= 5
    assert float(second.headers["X-RateLimit-Reset"]) > 1e9
    assert third.status == 429
    assert third.headers["Via"] and int(third.headers["Retry-After"]) >= 1
    assert set(body) >= {"message", "retry_after", "global"} and body["global"] is False
    assert 0 < body["retry_after"] <= 5
    # Another guild is another bucket (guild_id is a major parameter).
    other, _ = await http.call("GET", f"/guilds/{quiet}/roles")
    assert other.status == 200


async def test_global_limit_applies_across_routes(http: SandboxHttp, fixture: Fixture) -> None:
    await http.control("POST", "/_sandbox/ratelimits", {"global_per_second": 3, "route_limit": 100})
    playground = guild_id(fixture, "Polly Playground")
    statuses = []
    for path in ("/users/@me", f"/guilds/{playground}/roles", f"/guilds/{playground}", "/users/@me"):
        response, body = await http.call("GET", path)
        statuses.append(response.status)
    assert statuses == [200, 200, 200, 429]
    assert body["global"] is True
    assert response.headers["X-RateLimit-Global"] == "true"


async def test_faults_fail_or_slow_the_next_matching_calls(http: SandboxHttp, fixture: Fixture) -> None:
    playground = guild_id(fixture, "Polly Playground")
    await http.control(
        "POST",
        "/_sandbox/faults",
        {"method": "GET", "route": "/guilds/{guild_id}/roles", "status": 502, "count": 2},
    )
    statuses = [(await http.call("GET", f"/guilds/{playground}/roles"))[0].status for _ in range(3)]
    assert statuses == [502, 502, 200]

    fault = await http.control(
        "POST", "/_sandbox/faults", {"method": "GET", "route": "/guilds/{guild_id}", "latency_ms": 300}
    )
    assert fault["latency_ms"] == 300
    started = time.monotonic()
    response, _ = await http.call("GET", f"/guilds/{playground}")
    assert response.status == 200 and time.monotonic() - started >= 0.3

    async with http.session.post(
        f"{http.sandbox.url}/_sandbox/faults", json={"method": "GET", "route": "/nope", "status": 500}
    ) as bad:
        assert bad.status == 400
        assert "Unknown route" in (await bad.json())["message"]
    await http.control("POST", "/_sandbox/faults", {"method": "*", "route": "*", "status": 500, "count": 9})
    await http.control("DELETE", "/_sandbox/faults")
    assert (await http.call("GET", "/users/@me"))[0].status == 200


async def test_stats_count_calls_by_route_template_and_answers_by_status(
    http: SandboxHttp, fixture: Fixture
) -> None:
    await http.control("POST", "/_sandbox/stats/reset")
    playground = guild_id(fixture, "Polly Playground")
    quiet = guild_id(fixture, "Quiet Corner")
    await http.call("GET", f"/guilds/{playground}/roles")
    await http.call("GET", f"/guilds/{quiet}/roles")
    await http.call("GET", f"/guilds/{quiet}/channels", auth=False)  # refused, but still a call
    stats = await http.control("GET", "/_sandbox/stats")
    assert stats == {
        "total": 3,
        "by_route": {"GET /guilds/{guild_id}/channels": 1, "GET /guilds/{guild_id}/roles": 2},
        "by_status": {"200": 2, "401": 1},
    }
    assert (await http.control("POST", "/_sandbox/stats/reset"))["total"] == 0


async def test_fixture_endpoint_returns_the_current_state(http: SandboxHttp, fixture: Fixture) -> None:
    playground = guild_id(fixture, "Polly Playground")
    _, role = await http.call("POST", f"/guilds/{playground}/roles", json={"name": "Fresh"})
    state = await http.control("GET", "/_sandbox/fixture")
    assert state["bot"]["id"] == str(fixture.bot.id) and state["bot"]["token"] == fixture.bot.token
    guild = next(g for g in state["guilds"] if g["id"] == str(playground))
    assert "Fresh" in {r["name"] for r in guild["roles"]}
    # The document loads back as a fixture.
    assert Fixture.model_validate(state).guilds[0].id == playground
    assert role["name"] == "Fresh"


async def test_one_overwrite_can_be_put_and_deleted(http: SandboxHttp, fixture: Fixture) -> None:
    # #announcements already denies the bot MENTION_EVERYONE; an unrelated overwrite is
    # checked on its own bits only.
    announcements = channel_id(fixture, "Polly Playground", "announcements")
    voters = role_id(fixture, "Polly Playground", "Poll Voters")
    path = f"/channels/{announcements}/permissions/{voters}"
    response, _ = await http.call("PUT", path, json={"type": 0, "allow": str(1 << 11), "deny": "0"})
    assert response.status == 204
    _, channel = await http.call("GET", f"/channels/{announcements}")
    assert {"id": str(voters), "type": 0, "allow": str(1 << 11), "deny": "0"} in channel[
        "permission_overwrites"
    ]
    assert len(channel["permission_overwrites"]) == 2
    # Allowing what the bot does not hold in the guild (BAN_MEMBERS) is refused.
    response, body = await http.call("PUT", path, json={"type": 0, "allow": str(1 << 2)})
    assert (response.status, body["code"]) == (403, 50013)
    response, _ = await http.call("DELETE", path)
    assert response.status == 204
    _, channel = await http.call("GET", f"/channels/{announcements}")
    assert len(channel["permission_overwrites"]) == 1
