"""The polls API end to end: GraphQL mutations against a running API, the scheduler in
``polly bot`` posting to the sandbox over real HTTP, the database as the truth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import channel_id, role_id, wait_until
from tests.poll_stack import CREATE, GET, POLL_FIELDS, Polls, iso

pytestmark = pytest.mark.asyncio


async def test_a_poll_opens_with_one_ping_and_closes_with_results(polls: Polls) -> None:
    poll = await polls.create(pingRoleId=str(polls.role), pingOnClose=True)
    assert poll["status"] == "SCHEDULED" and poll["version"] == 1 and poll["pingOnOpen"] is True
    opened = await polls.until_status(poll["id"], "OPEN")
    assert opened["messageId"] is not None and opened["problem"] is None
    [posted] = await polls.messages()
    assert posted["id"] == opened["messageId"]
    assert posted["mention_roles"] == [str(polls.role)] and posted["mention_everyone"] is False
    assert [b["label"] for row in posted["components"] for b in row["components"]] == ["Pizza", "Sushi"]

    body = await polls.run(
        f"mutation($id: ID!) {{ closePoll(id: $id) {{ {POLL_FIELDS} }} }}", {"id": poll["id"]}
    )
    assert body["data"]["closePoll"]["status"] == "CLOSED"

    async def finished() -> bool:
        found = await polls.messages()
        return len(found) == 2 and all(
            b["disabled"] for row in found[0]["components"] for b in row["components"]
        )

    await wait_until(finished, within=10)
    first, results = await polls.messages()
    assert results["mention_roles"] == [str(polls.role)]
    assert "0 votes" in str(first["embeds"])


# -- validation ---------------------------------------------------------------------------------

LATER = timedelta(hours=1)


def _invalid_drafts() -> list[Any]:
    """(changes to a valid draft, the field the error must name), each breaking one rule."""
    now = datetime.now(UTC)
    two = [{"text": "A"}, {"text": "B"}]
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("empty name", {"name": "  "}, "name"),
        ("long name", {"name": "n" * 201}, "name"),
        ("empty question", {"question": ""}, "question"),
        ("long question", {"question": "q" * 2001}, "question"),
        ("one option", {"options": [{"text": "A"}]}, "options"),
        ("eleven options", {"options": [{"text": f"O{i}"} for i in range(11)]}, "options"),
        ("same option ignoring case", {"options": [{"text": "Yes"}, {"text": "yES"}]}, "options[1].text"),
        ("long option", {"options": [{"text": "o" * 81}, {"text": "B"}]}, "options[0].text"),
        ("empty option", {"options": [{"text": "A"}, {"text": " "}]}, "options[1].text"),
        (
            "a word for an emoji",
            {"options": [{"text": "A", "emoji": "pizza"}, {"text": "B"}]},
            "options[0].emoji",
        ),
        ("no choices", {"options": two, "maxChoices": 0}, "maxChoices"),
        ("more choices than options", {"options": two, "maxChoices": 3}, "maxChoices"),
        (
            "closes before it opens",
            {"opensAt": iso(now + 2 * LATER), "closesAt": iso(now + LATER)},
            "closesAt",
        ),
        ("closes in the past", {"closesAt": iso(now - LATER)}, "closesAt"),
        ("under a minute", {"closesAt": iso(now + timedelta(seconds=30))}, "closesAt"),
        ("over 30 days", {"closesAt": iso(now + timedelta(days=30, minutes=5))}, "closesAt"),
        ("naive opensAt", {"opensAt": (now + LATER).replace(tzinfo=None).isoformat()}, "opensAt"),
        ("naive closesAt", {"closesAt": (now + LATER).replace(tzinfo=None).isoformat()}, "closesAt"),
        ("unknown zone", {"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ("ping on close without a role", {"pingOnClose": True}, "pingOnClose"),
        ("ping on open without a role", {"pingOnOpen": True}, "pingOnOpen"),
    ]
    return [pytest.param(changes, field, id=name) for name, changes, field in cases]


async def test_every_rule_names_its_field(polls: Polls) -> None:
    for case in _invalid_drafts():
        changes, field = case.values
        body = await polls.run(CREATE, {"input": polls.draft(**changes)})
        assert body["data"] is None, (case.id, body)
        [error] = body["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", (case.id, error)
        assert error["extensions"]["field"] == field, (case.id, error)
    found = await polls.run("query($g: ID!) { polls(guildId: $g) { nodes { id } } }", {"g": str(polls.guild)})
    assert found["data"]["polls"]["nodes"] == []  # nothing was created


async def test_channel_and_roles_are_checked_against_the_cached_guild_without_calling_discord(
    polls: Polls,
) -> None:
    fixture = polls.api.sandbox.fixture
    playground = "Polly Playground"
    cases = [
        ({"channelId": str(channel_id(fixture, "Quiet Corner", "general"))}, "channelId", "not a channel"),
        ({"channelId": str(channel_id(fixture, playground, "staff"))}, "channelId", "cannot see"),
        ({"channelId": str(channel_id(fixture, playground, "Text Channels"))}, "channelId", "category"),
        ({"pingRoleId": str(polls.guild)}, "pingRoleId", "@everyone"),
        ({"pingRoleId": "123456789012345678"}, "pingRoleId", "not a role"),
        ({"pingRoleId": str(role_id(fixture, playground, "Polly"))}, "pingRoleId", "managed"),
        (
            # Not mentionable, and the bot's Mention Everyone is denied in #announcements.
            {
                "channelId": str(channel_id(fixture, playground, "announcements")),
                "pingRoleId": str(role_id(fixture, playground, "Quiet Folk")),
            },
            "pingRoleId",
            "not mentionable",
        ),
        ({"allowedRoleIds": ["123456789012345678"]}, "allowedRoleIds[0]", "not a role"),
    ]
    # What a guild fill asks of Discord (the bot's own calls, such as its scheduler logging in
    # late on a loaded machine, are no business of the API's validation).
    guild = "GET /guilds/{guild_id}"
    fill_routes = (guild, f"{guild}/channels", f"{guild}/roles", f"{guild}/members/{{user_id}}")

    def fills() -> int:
        return sum(polls.api.calls_to(route) for route in fill_routes)

    before = fills()
    for changes, field, words in cases:
        body = await polls.run(CREATE, {"input": polls.draft(**changes)})
        [error] = body["errors"]
        assert (error["extensions"]["code"], error["extensions"]["field"]) == ("BAD_USER_INPUT", field), error
        assert words in error["message"], error
    # The bot writes the guild through to the cache: validating cost Discord nothing.
    assert fills() == before
    quiet = await polls.create(pingRoleId=str(role_id(fixture, playground, "Quiet Folk")))
    assert quiet["pingRoleId"] is not None  # pingable in #polls: the bot may Mention Everyone there


# -- mutations ----------------------------------------------------------------------------------

UPDATE = f"""mutation($id: ID!, $v: Int!, $input: UpdatePollInput!) {{
  updatePoll(id: $id, expectedVersion: $v, input: $input) {{ {POLL_FIELDS} }} }}"""


def mutation(name: str) -> str:
    return f"mutation($id: ID!) {{ {name}(id: $id) {{ {POLL_FIELDS} }} }}"


REOPEN = f"""mutation($id: ID!, $closesAt: DateTime!) {{
  reopenPoll(id: $id, closesAt: $closesAt) {{ {POLL_FIELDS} }} }}"""


async def test_a_scheduled_poll_changes_anything_and_a_stale_version_is_a_conflict(polls: Polls) -> None:
    poll = await polls.create(opensAt=iso(datetime.now(UTC) + timedelta(minutes=10)))
    changes = {
        "name": "Dinner",
        "options": [{"text": "Ramen"}, {"text": "Tacos"}, {"text": "Curry"}],
        "maxChoices": 2,
        "timezone": "Asia/Tokyo",
        "pingRoleId": str(polls.role),
        "anonymous": True,
        "resultsVisibility": "AFTER_CLOSE",
    }
    body = await polls.run(UPDATE, {"id": poll["id"], "v": 1, "input": changes})
    changed = body["data"]["updatePoll"]
    assert changed["version"] == 2 and changed["name"] == "Dinner" and changed["maxChoices"] == 2
    assert [o["text"] for o in changed["options"]] == ["Ramen", "Tacos", "Curry"]
    assert (changed["timezone"], changed["anonymous"], changed["resultsVisibility"]) == (
        "Asia/Tokyo", True, "AFTER_CLOSE",
    )  # fmt: skip
    stale = await polls.run(UPDATE, {"id": poll["id"], "v": 1, "input": {"name": "Brunch"}})
    [error] = stale["errors"]
    assert error["extensions"]["code"] == "CONFLICT" and error["extensions"]["currentVersion"] == 2
    assert (await polls.get(poll["id"]))["name"] == "Dinner"
    cleared = await polls.run(UPDATE, {"id": poll["id"], "v": 2, "input": {"pingRoleId": None}})
    assert cleared["data"]["updatePoll"]["pingRoleId"] is None
    nulled = await polls.run(UPDATE, {"id": poll["id"], "v": 3, "input": {"closesAt": None}})
    assert nulled["errors"][0]["extensions"]["field"] == "closesAt"
    assert "closesAt cannot be null" in nulled["errors"][0]["message"]
    for bad in ("²", "99999999999999999999", "-1", "abc"):
        body = await polls.run(GET, {"id": bad})
        assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "id"}, (bad, body)


async def test_an_open_poll_takes_text_fixes_and_a_later_close_only(polls: Polls) -> None:
    poll = await polls.create()
    opened = await polls.until_status(poll["id"], "OPEN")
    version = opened["version"]
    refused = [
        ({"maxChoices": 2}, "maxChoices"),
        ({"channelId": str(polls.channel)}, "channelId"),
        ({"options": [{"text": "A"}, {"text": "B"}, {"text": "C"}]}, "options"),
        ({"closesAt": iso(datetime.now(UTC) + timedelta(minutes=30))}, "closesAt"),  # earlier
    ]
    for changes, field in refused:
        body = await polls.run(UPDATE, {"id": poll["id"], "v": version, "input": changes})
        assert body["errors"][0]["extensions"]["field"] == field, body
    later = iso(datetime.now(UTC) + timedelta(hours=3))
    fixes = {"question": "Where do we eat tonight?", "options": [{"text": "Pizza!"}, {"text": "Sushi"}]}
    body = await polls.run(UPDATE, {"id": poll["id"], "v": version, "input": {**fixes, "closesAt": later}})
    assert body["data"]["updatePoll"]["version"] == version + 1

    async def edited() -> bool:
        [message] = await polls.messages()
        return "Where do we eat tonight?" in str(message["embeds"]) and "Pizza!" in str(message["components"])

    await wait_until(edited, within=10)


async def test_open_now_close_reopen_cancel_and_their_conflicts(polls: Polls) -> None:
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    poll = await polls.create(opensAt=iso(tomorrow), closesAt=iso(tomorrow + timedelta(days=1)))
    closed_early = await polls.run(mutation("closePoll"), {"id": poll["id"]})
    assert closed_early["errors"][0]["extensions"] | {"currentVersion": 1} == {
        "code": "CONFLICT", "currentVersion": 1, "status": "SCHEDULED",
    }  # fmt: skip
    now_open = await polls.run(mutation("openPollNow"), {"id": poll["id"]})
    assert now_open["data"]["openPollNow"]["status"] == "SCHEDULED"  # posted within a second
    await polls.until_status(poll["id"], "OPEN", within=5)
    closed = await polls.run(mutation("closePoll"), {"id": poll["id"]})
    assert closed["data"]["closePoll"]["status"] == "CLOSED"
    again = await polls.run(mutation("closePoll"), {"id": poll["id"]})
    assert again["errors"][0]["extensions"]["code"] == "CONFLICT"
    assert again["errors"][0]["extensions"]["status"] == "CLOSED"

    reopen = REOPEN
    past = await polls.run(reopen, {"id": poll["id"], "closesAt": iso(datetime.now(UTC) - LATER)})
    assert past["errors"][0]["extensions"]["field"] == "closesAt"
    reopened = await polls.run(reopen, {"id": poll["id"], "closesAt": iso(datetime.now(UTC) + LATER)})
    assert reopened["data"]["reopenPoll"]["status"] == "OPEN"

    async def buttons_enabled() -> bool:
        [message] = await polls.messages()
        return not any(b.get("disabled", False) for row in message["components"] for b in row["components"])

    await wait_until(buttons_enabled, within=10)
    cancelled = await polls.run(mutation("cancelPoll"), {"id": poll["id"]})
    assert cancelled["data"]["cancelPoll"]["status"] == "CANCELLED"

    async def shows_cancelled() -> bool:
        [message] = await polls.messages()
        return "cancelled" in str(message["embeds"])

    await wait_until(shows_cancelled, within=10)
    reopened_cancelled = await polls.run(
        reopen, {"id": poll["id"], "closesAt": iso(datetime.now(UTC) + LATER)}
    )
    assert reopened_cancelled["errors"][0]["extensions"]["code"] == "CONFLICT"


async def test_delete_hides_the_poll_and_deletes_its_message(polls: Polls) -> None:
    kept, removed = await polls.create(name="Kept"), await polls.create(name="Removed")
    kept_message = (await polls.until_status(kept["id"], "OPEN"))["messageId"]
    await polls.until_status(removed["id"], "OPEN")
    delete = "mutation($id: ID!, $m: Boolean!) { deletePoll(id: $id, deleteMessage: $m) }"
    assert (await polls.run(delete, {"id": kept["id"], "m": False}))["data"]["deletePoll"] is True
    assert (await polls.run(delete, {"id": removed["id"], "m": True}))["data"]["deletePoll"] is True
    gone = await polls.run(GET, {"id": removed["id"]})
    assert gone["errors"][0]["extensions"]["code"] == "NOT_FOUND"

    async def only_kept_left() -> bool:
        return [m["id"] for m in await polls.messages()] == [kept_message]

    await wait_until(only_kept_left, within=10)
    again = await polls.run(delete, {"id": removed["id"], "m": True})
    assert again["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_bot_guilds_shows_guilds_the_bot_reported_after_an_earlier_empty_answer(stack: Polls) -> None:
    query = "{ botGuilds { id } }"
    before = await stack.run(query, {})
    assert before["data"]["botGuilds"] == []  # no bot has reported its guilds yet
    await stack.start_bot()
    after = await stack.run(query, {})
    assert len(after["data"]["botGuilds"]) == len(stack.api.sandbox.fixture.guilds) - 1  # not "Elsewhere"


async def test_a_channel_where_the_bot_cannot_embed_is_refused_saying_what_to_grant(polls: Polls) -> None:
    bot_id = polls.api.sandbox.fixture.bot.id
    embed_links = 1 << 14
    response, body = await polls.http.call(
        "PUT", f"/channels/{polls.channel}/permissions/{bot_id}", json={"type": 1, "deny": str(embed_links)}
    )
    assert response.status == 204, body
    refusal: dict[str, Any] = {}

    async def refused() -> bool:  # once the bot has written the overwrite through to the cache
        answer = await polls.run(CREATE, {"input": polls.draft()})
        refusal.update(answer)
        return "errors" in answer

    await wait_until(refused, within=10)
    [error] = refusal["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "channelId"}
    assert "Embed Links" in error["message"]
