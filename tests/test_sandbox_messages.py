"""What a poll bot does with messages, against the sandbox over real HTTP and the gateway.

Buttons (action rows of buttons, with Discord's limits), ``nonce`` with ``enforce_nonce``, deleting
messages and channels, and the control API that shows who a message pinged and deletes as a
moderator would.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
import discord
import pytest

from app.sandbox.builtin import default_fixture
from app.sandbox.fixture import Fixture, Message
from app.sandbox.nonces import NonceRecord
from app.sandbox.server import Sandbox
from app.sandbox.snowflake import snowflake_at
from tests.conftest import SandboxHttp, channel_id, guild_id, role_id

GUILDS = 1 << 0
GUILD_MESSAGES = 1 << 9
MANAGE_CHANNELS = 1 << 4
SEND_MESSAGES = 1 << 11
# A message by alice (not the bot) in each of these channels: (guild, channel).
OTHERS_MESSAGES = {("Polly Playground", "polls"): 1, ("Polly HQ", "general"): 2}


@pytest.fixture
def fixture() -> Fixture:
    """The default world, plus a message by alice where the bot may or may not delete others'."""
    world = default_fixture()
    alice = next(user for user in world.users if user.username == "alice")
    for (guild_name, channel_name), serial in OTHERS_MESSAGES.items():
        guild = next(guild for guild in world.guilds if guild.name == guild_name)
        channel = next(channel for channel in guild.channels if channel.name == channel_name)
        channel.messages.append(
            Message(
                id=snowflake_at(1_720_000_000_000, serial),
                author_id=alice.id,
                content="Count me in!",
                timestamp=datetime(2024, 7, 3, tzinfo=UTC),
            )
        )
    return world


def alices_message(guild_name: str, channel_name: str) -> int:
    return snowflake_at(1_720_000_000_000, OTHERS_MESSAGES[(guild_name, channel_name)])


def button(custom_id: str, label: str = "Vote", **extra: Any) -> dict[str, Any]:
    return {"type": 2, "style": 1, "custom_id": custom_id, "label": label, **extra}


def row(*buttons: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": 1, "components": list(buttons), **extra}


def codes_at(body: dict[str, Any], path: tuple[str | int, ...]) -> list[str]:
    """The Discord error codes a 50035 answer gives for one field path."""
    node = body["errors"]
    for part in path:
        node = node[str(part)]
    return [error["code"] for error in node["_errors"]]


class Listener:
    """A raw gateway session, past READY and its GUILD_CREATEs: what is dispatched, in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def receive(self) -> dict[str, Any]:
        message = await self.ws.receive(timeout=5)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        payload: dict[str, Any] = json.loads(message.data)
        return payload

    async def dispatch(self) -> dict[str, Any]:
        while True:
            payload = await self.receive()
            if payload["op"] == 0:
                return payload

    async def until(self, name: str) -> list[dict[str, Any]]:
        """Every dispatch up to and including the next one named ``name``."""
        seen = [await self.dispatch()]
        while seen[-1]["t"] != name:
            seen.append(await self.dispatch())
        return seen

    async def next_named(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = (await self.until(name))[-1]["d"]
        return data


@asynccontextmanager
async def listening(sandbox: Sandbox, intents: int = GUILDS | GUILD_MESSAGES) -> AsyncIterator[Listener]:
    async with aiohttp.ClientSession() as session, session.ws_connect(sandbox.gateway_url) as ws:
        listener = Listener(ws)
        assert (await listener.receive())["op"] == 10
        token = sandbox.fixture.bot.token
        await ws.send_json({"op": 2, "d": {"token": token, "intents": intents, "properties": {}}})
        ready = await listener.receive()
        assert ready["t"] == "READY"
        for _ in ready["d"]["guilds"]:
            assert (await listener.receive())["t"] == "GUILD_CREATE"
        yield listener


async def post(http: SandboxHttp, channel: int, body: dict[str, Any]) -> tuple[int, Any]:
    response, answer = await http.call("POST", f"/channels/{channel}/messages", json=body)
    return response.status, answer


async def kept(http: SandboxHttp, channel: int) -> list[dict[str, Any]]:
    listed: dict[str, list[dict[str, Any]]] = await http.control(
        "GET", f"/_sandbox/channels/{channel}/messages"
    )
    return listed["messages"]


# -- components --------------------------------------------------------------------------------


async def test_buttons_are_kept_numbered_and_dispatched(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture
) -> None:
    polls = channel_id(fixture, "Polly Playground", "polls")
    components = [
        row(button("vote:1", "Pizza", emoji={"name": "🍕"}), button("vote:2", "Pasta", style=3)),
        row(
            {"type": 2, "style": 5, "label": "Results", "url": "https://example.com/poll/1"},
            button("close", "Close", style=4, disabled=True, emoji={"id": "123456789012345678", "name": "x"}),
        ),
    ]
    async with listening(sandbox) as gateway:
        status, message = await post(http, polls, {"content": "Lunch?", "components": components})
        event = await gateway.next_named("MESSAGE_CREATE")
    assert status == 200
    assert message["components"] == [
        {
            "type": 1,
            "id": 1,
            "components": [
                {
                    "type": 2,
                    "id": 2,
                    "style": 1,
                    "label": "Pizza",
                    "custom_id": "vote:1",
                    "emoji": {"name": "🍕"},
                },
                {"type": 2, "id": 3, "style": 3, "label": "Pasta", "custom_id": "vote:2"},
            ],
        },
        {
            "type": 1,
            "id": 4,
            "components": [
                {"type": 2, "id": 5, "style": 5, "label": "Results", "url": "https://example.com/poll/1"},
                {
                    "type": 2,
                    "id": 6,
                    "style": 4,
                    "label": "Close",
                    "custom_id": "close",
                    "emoji": {"name": "x", "id": "123456789012345678", "animated": False},
                    "disabled": True,
                },
            ],
        },
    ]
    assert event["components"] == message["components"] and event["id"] == message["id"]
    _, fetched = await http.call("GET", f"/channels/{polls}/messages/{message['id']}")
    assert fetched["components"] == message["components"]
    assert (await kept(http, polls))[-1]["components"] == message["components"]


async def test_given_ids_are_kept_and_numbering_skips_them(http: SandboxHttp, fixture: Fixture) -> None:
    polls = channel_id(fixture, "Polly Playground", "polls")
    components = [row(button("a", id=2), button("b"), button("c", id=0), id=7)]
    status, message = await post(http, polls, {"components": components})
    assert status == 200
    assert message["components"][0]["id"] == 7
    assert [b["id"] for b in message["components"][0]["components"]] == [2, 1, 3]


async def test_every_limit_at_its_boundary_is_accepted(http: SandboxHttp, fixture: Fixture) -> None:
    polls = channel_id(fixture, "Polly Playground", "polls")
    # 5 rows of 5 buttons; custom_ids of 100 characters (and one of 1); labels of 80.
    rows = [row(*(button(f"{r}{b}".ljust(100, "x"), "L" * 80) for b in range(5))) for r in range(5)]
    rows[0]["components"][0]["custom_id"] = "a"
    rows[0]["components"][1].update({"label": "", "emoji": {"name": "🗳️"}})
    status, message = await post(http, polls, {"content": "Big poll", "components": rows})
    assert status == 200, message
    assert len(message["components"]) == 5
    assert all(len(r["components"]) == 5 for r in message["components"])
    assert len({b["id"] for r in message["components"] for b in r["components"]}) == 25


INVALID: dict[str, tuple[list[dict[str, Any]], tuple[str | int, ...], str]] = {
    "six rows": ([row(button(f"b{n}")) for n in range(6)], ("components",), "BASE_TYPE_MAX_LENGTH"),
    "six buttons in a row": (
        [row(*(button(f"b{n}") for n in range(6)))],
        ("components", 0, "components"),
        "BASE_TYPE_BAD_LENGTH",
    ),
    "an empty row": ([row()], ("components", 0, "components"), "BASE_TYPE_BAD_LENGTH"),
    "an empty custom_id": (
        [row(button(""))],
        ("components", 0, "components", 0, "custom_id"),
        "BASE_TYPE_BAD_LENGTH",
    ),
    "a custom_id of 101": (
        [row(button("x" * 101))],
        ("components", 0, "components", 0, "custom_id"),
        "BASE_TYPE_BAD_LENGTH",
    ),
    "a custom_id twice": (
        [row(button("vote")), row(button("other"), button("vote"))],
        ("components", 1, "components", 1, "custom_id"),
        "COMPONENT_CUSTOM_ID_DUPLICATED",
    ),
    "a label of 81": (
        [row(button("vote", "L" * 81))],
        ("components", 0, "components", 0, "label"),
        "BASE_TYPE_MAX_LENGTH",
    ),
    "style 0": (
        [row(button("vote", style=0))],
        ("components", 0, "components", 0, "style"),
        "BASE_TYPE_CHOICES",
    ),
    "style 6": (
        [row(button("vote", style=6))],
        ("components", 0, "components", 0, "style"),
        "BASE_TYPE_CHOICES",
    ),
    "a link without url": (
        [row({"type": 2, "style": 5, "label": "Results"})],
        ("components", 0, "components", 0, "url"),
        "BUTTON_COMPONENT_URL_REQUIRED",
    ),
    "a link with a custom_id": (
        [row(button("vote", style=5, url="https://example.com"))],
        ("components", 0, "components", 0, "custom_id"),
        "BUTTON_COMPONENT_CUSTOM_ID_URL_MUTUALLY_EXCLUSIVE",
    ),
    "a button with a url": (
        [row(button("vote", url="https://example.com"))],
        ("components", 0, "components", 0, "url"),
        "BUTTON_COMPONENT_CUSTOM_ID_URL_MUTUALLY_EXCLUSIVE",
    ),
    "a button without custom_id": (
        [row({"type": 2, "style": 2, "label": "Vote"})],
        ("components", 0, "components", 0, "custom_id"),
        "BUTTON_COMPONENT_CUSTOM_ID_REQUIRED",
    ),
    "a link with another scheme": (
        [row({"type": 2, "style": 5, "label": "Results", "url": "ftp://example.com"})],
        ("components", 0, "components", 0, "url"),
        "URL_TYPE_INVALID_SCHEME",
    ),
    "an emoji without name": (
        [row(button("vote", emoji={"animated": False}))],
        ("components", 0, "components", 0, "emoji", "name"),
        "BUTTON_COMPONENT_INVALID_EMOJI",
    ),
    "an emoji that is a word": (
        [row(button("vote", emoji={"name": "pizza"}))],
        ("components", 0, "components", 0, "emoji", "name"),
        "BUTTON_COMPONENT_INVALID_EMOJI",
    ),
    "an emoji name of 33": (
        [row(button("vote", emoji={"id": "1234567890", "name": "e" * 33}))],
        ("components", 0, "components", 0, "emoji", "name"),
        "BASE_TYPE_MAX_LENGTH",
    ),
    "an emoji id that is no snowflake": (
        [row(button("vote", emoji={"id": "pizza", "name": "🍕"}))],
        ("components", 0, "components", 0, "emoji", "id"),
        "NUMBER_TYPE_COERCE",
    ),
    "disabled as text": (
        [row(button("vote", disabled="yes"))],
        ("components", 0, "components", 0, "disabled"),
        "BASE_TYPE_BOOLEAN",
    ),
    "a select menu": (
        [row({"type": 3, "custom_id": "pick", "options": []})],
        ("components", 0, "components", 0, "type"),
        "BASE_TYPE_CHOICES",
    ),
    "a button outside a row": ([button("vote")], ("components", 0, "type"), "BASE_TYPE_CHOICES"),
    "an id twice": (
        [row(button("a", id=5), button("b", id=5))],
        ("components", 0, "components", 1, "id"),
        "COMPONENT_ID_DUPLICATED",
    ),
}


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("case", sorted(INVALID))
async def test_each_component_rule_is_refused_with_its_field(
    http: SandboxHttp, fixture: Fixture, case: str, method: str
) -> None:
    polls = channel_id(fixture, "Polly Playground", "polls")
    status, original = await post(http, polls, {"content": "Lunch?", "components": [row(button("vote"))]})
    assert status == 200
    components, path, code = INVALID[case]
    body = {"content": "Lunch!", "components": components}
    target = f"/channels/{polls}/messages" + (f"/{original['id']}" if method == "PATCH" else "")
    response, answer = await http.call(method, target, json=body)
    assert (response.status, answer["code"], answer["message"]) == (400, 50035, "Invalid Form Body")
    assert code in codes_at(answer, path), answer
    # Nothing was posted or changed.
    assert [(m["id"], m["content"]) for m in await kept(http, polls)] == [
        (str(alices_message("Polly Playground", "polls")), "Count me in!"),
        (original["id"], "Lunch?"),
    ]


async def test_an_edit_replaces_or_keeps_components_and_is_dispatched(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture
) -> None:
    polls = channel_id(fixture, "Polly Playground", "polls")
    _, message = await post(http, polls, {"content": "Open", "components": [row(button("a"), button("b"))]})
    path = f"/channels/{polls}/messages/{message['id']}"
    frozen = [row(button("a", disabled=True), button("b", disabled=True))]
    async with listening(sandbox) as gateway:
        response, edited = await http.call("PATCH", path, json={"content": "Closed", "components": frozen})
        event = await gateway.next_named("MESSAGE_UPDATE")
    assert response.status == 200
    assert [b.get("disabled") for b in edited["components"][0]["components"]] == [True, True]
    assert event["components"] == edited["components"] and event["content"] == "Closed"
    # An edit that leaves components out keeps them; [] (or null) removes them.
    _, kept_them = await http.call("PATCH", path, json={"content": "Closed for good"})
    assert kept_them["components"] == edited["components"]
    _, removed = await http.call("PATCH", path, json={"components": []})
    assert removed["components"] == [] and removed["content"] == "Closed for good"
    # Components alone make a message; with no content, embeds or components it is empty.
    status, only_buttons = await post(http, polls, {"components": [row(button("only"))]})
    assert status == 200 and only_buttons["content"] == ""
    response, refused = await http.call(
        "PATCH", f"/channels/{polls}/messages/{only_buttons['id']}", json={"components": None}
    )
    assert (response.status, refused["code"]) == (400, 50006)


async def test_others_messages_components_cannot_be_edited(http: SandboxHttp, fixture: Fixture) -> None:
    polls = channel_id(fixture, "Polly Playground", "polls")
    alices = alices_message("Polly Playground", "polls")
    response, body = await http.call(
        "PATCH", f"/channels/{polls}/messages/{alices}", json={"components": [row(button("mine"))]}
    )
    assert (response.status, body["code"]) == (403, 50005)


# -- nonce -------------------------------------------------------------------------------------


async def test_an_enforced_nonce_answers_with_the_first_message(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture
) -> None:
    polls = channel_id(fixture, "Polly Playground", "polls")
    async with listening(sandbox) as gateway:
        status, first = await post(
            http, polls, {"content": "Poll 42", "nonce": "poll-42", "enforce_nonce": True}
        )
        assert status == 200 and first["nonce"] == "poll-42"
        created = await gateway.next_named("MESSAGE_CREATE")
        assert (created["id"], created["nonce"]) == (first["id"], "poll-42")
        status, again = await post(
            http, polls, {"content": "Poll 42 (retry)", "nonce": "poll-42", "enforce_nonce": True}
        )
        assert status == 200
        assert again == first
        # The next MESSAGE_CREATE is a later message's: the retry posted nothing.
        _, marker = await post(http, polls, {"content": "marker"})
        seen = await gateway.until("MESSAGE_CREATE")
        assert [p["d"]["id"] for p in seen if p["t"] == "MESSAGE_CREATE"] == [marker["id"]]
    assert [m["content"] for m in await kept(http, polls)][-2:] == ["Poll 42", "marker"]


async def test_without_enforce_nonce_a_repeated_nonce_posts_again(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture
) -> None:
    polls = channel_id(fixture, "Polly Playground", "polls")
    async with listening(sandbox) as gateway:
        _, first = await post(http, polls, {"content": "one", "nonce": "same"})
        _, second = await post(http, polls, {"content": "two", "nonce": "same", "enforce_nonce": False})
        events = [await gateway.next_named("MESSAGE_CREATE") for _ in range(2)]
    assert first["id"] != second["id"]
    assert [(e["id"], e["nonce"]) for e in events] == [(first["id"], "same"), (second["id"], "same")]


async def test_an_enforced_nonce_is_per_channel_and_nonces_compare_as_text(
    http: SandboxHttp, fixture: Fixture
) -> None:
    polls = channel_id(fixture, "Polly Playground", "polls")
    general = channel_id(fixture, "Polly Playground", "general")
    _, first = await post(http, polls, {"content": "a", "nonce": 42, "enforce_nonce": True})
    assert first["nonce"] == 42  # as given: an integer stays one
    _, elsewhere = await post(http, general, {"content": "b", "nonce": 42, "enforce_nonce": True})
    assert elsewhere["id"] != first["id"]
    _, same = await post(http, polls, {"content": "c", "nonce": "42", "enforce_nonce": True})
    assert (same["id"], same["content"], same["nonce"]) == (first["id"], "a", 42)


async def test_an_enforced_nonce_lasts_five_minutes_and_its_message(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture
) -> None:
    polls = channel_id(fixture, "Polly Playground", "polls")
    record = sandbox.state.nonces
    body = {"content": "x", "nonce": "n", "enforce_nonce": True}
    _, first = await post(http, polls, body)
    started = time.monotonic()
    record.clock = lambda: started + 299
    assert (await post(http, polls, body))[1]["id"] == first["id"]
    record.clock = lambda: started + 301
    _, later = await post(http, polls, body)
    assert later["id"] != first["id"]
    # A deleted message holds its nonce no longer.
    await http.call("DELETE", f"/channels/{polls}/messages/{later['id']}")
    _, third = await post(http, polls, body)
    assert third["id"] not in (first["id"], later["id"])


async def test_the_nonce_is_only_in_the_create_answer_and_event(http: SandboxHttp, fixture: Fixture) -> None:
    polls = channel_id(fixture, "Polly Playground", "polls")
    _, message = await post(http, polls, {"content": "x", "nonce": "n1"})
    _, fetched = await http.call("GET", f"/channels/{polls}/messages/{message['id']}")
    _, edited = await http.call("PATCH", f"/channels/{polls}/messages/{message['id']}", json={"content": "y"})
    assert "nonce" in message and "nonce" not in fetched and "nonce" not in edited
    _, plain = await post(http, polls, {"content": "no nonce"})
    assert "nonce" not in plain


@pytest.mark.parametrize(
    ("nonce", "status", "code"),
    [
        ("n" * 25, 200, None),
        ("n" * 26, 400, "NONCE_TYPE_TOO_LONG"),
        (2**63 - 1, 200, None),
        (-(2**63), 200, None),
        (2**63, 400, "NONCE_TYPE_OUT_OF_BOUNDS"),
        (True, 400, "NONCE_TYPE_INVALID_TYPE"),
        (1.5, 400, "NONCE_TYPE_INVALID_TYPE"),
    ],
)
async def test_nonce_limits(
    http: SandboxHttp, fixture: Fixture, nonce: Any, status: int, code: str | None
) -> None:
    polls = channel_id(fixture, "Polly Playground", "polls")
    got, answer = await post(http, polls, {"content": "x", "nonce": nonce, "enforce_nonce": True})
    assert got == status, answer
    if code is None:
        assert answer["nonce"] == nonce
    else:
        assert codes_at(answer, ("nonce",)) == [code]


def test_the_nonce_record_forgets_the_oldest_beyond_its_capacity() -> None:
    now = 1000.0
    record = NonceRecord(ttl=300, capacity=3, clock=lambda: now)
    for number in range(4):
        record.remember(1, 2, f"n{number}", 100 + number)
    assert len(record) == 3
    assert record.find(1, 2, "n0") is None
    found = record.find(1, 2, "n3")
    assert found is not None and found.message_id == 103
    assert record.find(9, 2, "n3") is None and record.find(1, 9, "n3") is None


# -- deleting ----------------------------------------------------------------------------------


async def test_the_bot_deletes_its_own_message(http: SandboxHttp, sandbox: Sandbox, fixture: Fixture) -> None:
    playground = guild_id(fixture, "Polly Playground")
    polls = channel_id(fixture, "Polly Playground", "polls")
    _, message = await post(http, polls, {"content": "Oops"})
    path = f"/channels/{polls}/messages/{message['id']}"
    async with listening(sandbox) as gateway:
        response, body = await http.call("DELETE", path)
        event = await gateway.next_named("MESSAGE_DELETE")
    assert (response.status, body) == (204, None)
    assert event == {"id": message["id"], "channel_id": str(polls), "guild_id": str(playground)}
    for method in ("GET", "DELETE", "PATCH"):
        response, body = await http.call(method, path, json={"content": "x"} if method == "PATCH" else None)
        assert (response.status, body) == (404, {"message": "Unknown Message", "code": 10008})
    assert message["id"] not in {m["id"] for m in await kept(http, polls)}
    response, body = await http.call("DELETE", f"/channels/{polls}/messages/1")
    assert (response.status, body["code"]) == (404, 10008)


async def test_others_messages_need_manage_messages(http: SandboxHttp, fixture: Fixture) -> None:
    # In Polly Playground the bot lacks MANAGE_MESSAGES; in Polly HQ it is administrator.
    polls = channel_id(fixture, "Polly Playground", "polls")
    alices = alices_message("Polly Playground", "polls")
    response, body = await http.call("DELETE", f"/channels/{polls}/messages/{alices}")
    assert (response.status, body) == (403, {"message": "Missing Permissions", "code": 50013})
    assert str(alices) in {m["id"] for m in await kept(http, polls)}

    hq_general = channel_id(fixture, "Polly HQ", "general")
    alices = alices_message("Polly HQ", "general")
    response, _ = await http.call("DELETE", f"/channels/{hq_general}/messages/{alices}")
    assert response.status == 204
    assert await kept(http, hq_general) == []


async def test_message_delete_goes_to_sessions_with_guild_messages_only(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture
) -> None:
    polls = channel_id(fixture, "Polly Playground", "polls")
    general = channel_id(fixture, "Polly Playground", "general")
    _, message = await post(http, polls, {"content": "bye"})
    async with listening(sandbox) as with_messages, listening(sandbox, GUILDS) as without:
        await http.call("DELETE", f"/channels/{polls}/messages/{message['id']}")
        await http.call("DELETE", f"/channels/{general}")  # a later event both sessions get
        assert [p["t"] for p in await with_messages.until("CHANNEL_DELETE")] == [
            "MESSAGE_DELETE",
            "CHANNEL_DELETE",
        ]
        assert [p["t"] for p in await without.until("CHANNEL_DELETE")] == ["CHANNEL_DELETE"]


async def test_the_bot_deletes_a_channel_with_its_messages(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture
) -> None:
    polls = channel_id(fixture, "Polly Playground", "polls")
    _, message = await post(http, polls, {"content": "soon gone"})
    _, before = await http.call("GET", f"/channels/{polls}")
    async with listening(sandbox) as gateway:
        response, deleted = await http.call("DELETE", f"/channels/{polls}")
        event = await gateway.next_named("CHANNEL_DELETE")
    assert response.status == 200
    assert deleted == before == event
    unknown = {"message": "Unknown Channel", "code": 10003}
    for method, path in [
        ("GET", f"/channels/{polls}"),
        ("DELETE", f"/channels/{polls}"),
        ("POST", f"/channels/{polls}/messages"),
        ("GET", f"/channels/{polls}/messages/{message['id']}"),
        ("DELETE", f"/channels/{polls}/messages/{message['id']}"),
    ]:
        response, body = await http.call(method, path, json={"content": "x"} if method == "POST" else None)
        assert (response.status, body) == (404, unknown), (method, path)
    async with http.session.get(f"{sandbox.url}/_sandbox/channels/{polls}/messages") as listed:
        assert (listed.status, await listed.json()) == (404, unknown)
    _, channels = await http.call("GET", f"/guilds/{guild_id(fixture, 'Polly Playground')}/channels")
    assert str(polls) not in {c["id"] for c in channels}


async def test_deleting_a_category_leaves_its_channels_outside_any(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture
) -> None:
    category = channel_id(fixture, "Polly Playground", "Text Channels")
    async with listening(sandbox) as gateway:
        response, _ = await http.call("DELETE", f"/channels/{category}")
        await gateway.until("CHANNEL_DELETE")
        updated = [await gateway.next_named("CHANNEL_UPDATE") for _ in range(4)]  # its four channels
    assert response.status == 200
    assert {c["parent_id"] for c in updated} == {None}
    _, general = await http.call("GET", f"/channels/{channel_id(fixture, 'Polly Playground', 'general')}")
    assert general["parent_id"] is None


async def test_deleting_a_channel_needs_manage_channels(http: SandboxHttp, fixture: Fixture) -> None:
    quiet_general = channel_id(fixture, "Quiet Corner", "general")
    response, body = await http.call("DELETE", f"/channels/{quiet_general}")
    assert (response.status, body) == (403, {"message": "Missing Permissions", "code": 50013})
    response, _ = await http.call("GET", f"/channels/{quiet_general}")
    assert response.status == 200


async def test_a_permission_is_taken_from_the_bot_in_one_channel_by_an_overwrite(
    http: SandboxHttp, fixture: Fixture
) -> None:
    """No control route is needed for this: the bot (with MANAGE_ROLES) can PUT a member
    overwrite on itself through REST, denying what it holds, as a test would on Discord."""
    polls = channel_id(fixture, "Polly Playground", "polls")
    general = channel_id(fixture, "Polly Playground", "general")
    overwrite = f"/channels/{polls}/permissions/{fixture.bot.id}"
    deny = {"type": 1, "allow": "0", "deny": str(SEND_MESSAGES | MANAGE_CHANNELS)}
    assert (await http.call("PUT", overwrite, json=deny))[0].status == 204
    assert (await post(http, polls, {"content": "x"}))[1] == {"message": "Missing Permissions", "code": 50013}
    assert (await http.call("DELETE", f"/channels/{polls}"))[0].status == 403
    assert (await post(http, general, {"content": "x"}))[0] == 200
    assert (await http.call("DELETE", overwrite))[0].status == 204
    assert (await post(http, polls, {"content": "x"}))[0] == 200


async def test_delete_routes_are_counted_faulted_and_rate_limited(
    http: SandboxHttp, fixture: Fixture
) -> None:
    polls = channel_id(fixture, "Polly Playground", "polls")
    general = channel_id(fixture, "Polly Playground", "general")
    ids = {}
    for channel in (polls, polls, general):
        ids.setdefault(channel, []).append((await post(http, channel, {"content": "x"}))[1]["id"])
    route = "/channels/{channel_id}/messages/{message_id}"
    await http.control("POST", "/_sandbox/stats/reset")
    await http.control("POST", "/_sandbox/faults", {"method": "DELETE", "route": route, "status": 502})
    assert (await http.call("DELETE", f"/channels/{polls}/messages/{ids[polls][0]}"))[0].status == 502
    assert (await http.call("DELETE", f"/channels/{polls}/messages/{ids[polls][0]}", auth=False))[
        0
    ].status == 401

    await http.control("POST", "/_sandbox/ratelimits", {"route_limit": 1, "route_window": 30})
    first, _ = await http.call("DELETE", f"/channels/{polls}/messages/{ids[polls][0]}")
    second, body = await http.call("DELETE", f"/channels/{polls}/messages/{ids[polls][1]}")
    other, _ = await http.call("DELETE", f"/channels/{general}/messages/{ids[general][0]}")
    channel, _ = await http.call("DELETE", f"/channels/{general}")
    assert (first.status, second.status, other.status, channel.status) == (204, 429, 204, 200)
    assert body["global"] is False and second.headers["X-RateLimit-Scope"] == "user"
    # channel_id is the major parameter; each route has its own bucket.
    assert first.headers["X-RateLimit-Bucket"] == other.headers["X-RateLimit-Bucket"]
    assert first.headers["X-RateLimit-Bucket"] != channel.headers["X-RateLimit-Bucket"]
    stats = await http.control("GET", "/_sandbox/stats")
    assert stats["by_route"] == {f"DELETE {route}": 5, "DELETE /channels/{channel_id}": 1}


# -- the control API ---------------------------------------------------------------------------


async def test_control_lists_messages_with_who_they_pinged(http: SandboxHttp, fixture: Fixture) -> None:
    playground = guild_id(fixture, "Polly Playground")
    polls = channel_id(fixture, "Polly Playground", "polls")
    voters = role_id(fixture, "Polly Playground", "Poll Voters")
    quiet = role_id(fixture, "Polly Playground", "Quiet Folk")
    bob = next(user.id for user in fixture.users if user.username == "bob")
    await post(
        http,
        polls,
        {
            "content": f"<@&{voters}> <@&{quiet}> <@{bob}> @everyone vote!",
            "allowed_mentions": {"parse": ["users"], "roles": [str(voters)]},
            "components": [row(button("yes"))],
        },
    )
    await post(http, polls, {"content": "@everyone it closes soon"})
    listed = await http.control("GET", f"/_sandbox/channels/{polls}/messages")
    assert (listed["guild_id"], listed["channel_id"]) == (str(playground), str(polls))
    alices, pinged, everyone = listed["messages"]
    assert alices["author"]["username"] == "alice"
    assert pinged["mention_roles"] == [str(voters)]
    assert [user["id"] for user in pinged["mentions"]] == [str(bob)]
    assert (
        pinged["mention_everyone"] is False and pinged["components"][0]["components"][0]["custom_id"] == "yes"
    )
    assert everyone["mention_everyone"] is True and everyone["mention_roles"] == []
    assert int(alices["id"]) < int(pinged["id"]) < int(everyone["id"])

    for path, status in [("/_sandbox/channels/1/messages", 404), ("/_sandbox/channels/x/messages", 400)]:
        async with http.session.get(http.sandbox.url + path) as response:
            assert response.status == status
            assert "message" in await response.json()


async def test_control_deletes_as_a_moderator(http: SandboxHttp, sandbox: Sandbox, fixture: Fixture) -> None:
    polls = channel_id(fixture, "Polly Playground", "polls")
    quiet_general = channel_id(fixture, "Quiet Corner", "general")
    alices = alices_message("Polly Playground", "polls")
    await post(http, quiet_general, {"content": "hello"})
    async with listening(sandbox) as gateway:
        # The bot could do neither itself.
        assert await http.control("DELETE", f"/_sandbox/channels/{polls}/messages/{alices}") is None
        message_event = await gateway.next_named("MESSAGE_DELETE")
        channel = await http.control("DELETE", f"/_sandbox/channels/{quiet_general}")
        channel_event = await gateway.next_named("CHANNEL_DELETE")
    assert message_event == {
        "id": str(alices),
        "channel_id": str(polls),
        "guild_id": str(guild_id(fixture, "Polly Playground")),
    }
    assert channel == channel_event and channel["name"] == "general"
    response, body = await http.call("GET", f"/channels/{quiet_general}")
    assert (response.status, body["code"]) == (404, 10003)
    for path in (f"/_sandbox/channels/{polls}/messages/{alices}", f"/_sandbox/channels/{quiet_general}"):
        async with http.session.delete(sandbox.url + path) as again:
            assert again.status == 404
    # The bot's rate limits and call counts are not the moderator's.
    assert (await http.control("GET", "/_sandbox/stats"))["by_route"].get(
        "DELETE /channels/{channel_id}"
    ) is None


# -- discord.py --------------------------------------------------------------------------------


async def test_discord_py_sends_buttons_and_sees_deletes(bot: discord.Client) -> None:
    guild = discord.utils.get(bot.guilds, name="Polly Playground")
    assert guild is not None
    channel = discord.utils.get(guild.text_channels, name="polls")
    assert channel is not None
    view = discord.ui.View()
    view.add_item(discord.ui.Button(label="Yes", custom_id="poll:yes", emoji="👍"))
    view.add_item(discord.ui.Button(label="Results", url="https://example.com/results"))
    created = bot.wait_for("message", timeout=5)
    sent = await channel.send("Vote!", view=view)
    received = await created
    assert received.id == sent.id
    buttons = [
        item
        for action_row in received.components
        if isinstance(action_row, discord.ActionRow)
        for item in action_row.children
    ]
    assert [
        (b.custom_id, b.url, str(b.emoji) if b.emoji else None)
        for b in buttons
        if isinstance(b, discord.Button)
    ] == [
        ("poll:yes", None, "👍"),
        (None, "https://example.com/results", None),
    ]
    deleted = bot.wait_for("raw_message_delete", timeout=5)
    await sent.delete()
    assert (await deleted).message_id == sent.id
    gone = bot.wait_for("guild_channel_delete", timeout=5)
    await channel.delete()
    assert (await gone).id == channel.id
