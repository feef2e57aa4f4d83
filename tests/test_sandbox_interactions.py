"""Button clicks as Discord delivers them, against the sandbox over real HTTP and the gateway.

A click made through the control API arrives as INTERACTION_CREATE; the bot answers once within
the response window (3 seconds), then follows up through the interaction's webhook while its
token lives (15 minutes). Both windows are shortened through the control API or passed by moving
the store's clock, so nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import discord
import pytest

from app.sandbox.fixture import Fixture
from app.sandbox.server import Sandbox
from tests.conftest import SandboxHttp, channel_id, guild_id, role_id
from tests.test_sandbox_messages import Listener, button, kept, listening, row

GUILDS = 1 << 0
GUILD_MESSAGES = 1 << 9
JSON = dict[str, Any]


class Clock:
    """The interaction store's clock, moved on by hand."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock(sandbox: Sandbox) -> Clock:
    moved = Clock()
    sandbox.state.interactions.clock = moved
    return moved


def user_id(fixture: Fixture, name: str) -> int:
    return next(user.id for user in fixture.users if user.username == name)


def polls(fixture: Fixture) -> int:
    return channel_id(fixture, "Polly Playground", "polls")


POLL_COMPONENTS = [
    row(button("vote:1", "Pizza"), button("vote:2", "Pasta", style=3)),
    row(button("closed", "Closed", style=2, disabled=True)),
]


async def post_poll(http: SandboxHttp, fixture: Fixture) -> JSON:
    response, message = await http.call(
        "POST",
        f"/channels/{polls(fixture)}/messages",
        json={"content": "Lunch?", "components": POLL_COMPONENTS},
    )
    assert response.status == 200, message
    posted: JSON = message
    return posted


async def click(
    http: SandboxHttp, fixture: Fixture, message: JSON, custom_id: str = "vote:1", **extra: Any
) -> tuple[int, JSON]:
    body = {
        "user_id": str(user_id(fixture, "bob")),
        "channel_id": message["channel_id"],
        "message_id": message["id"],
        "custom_id": custom_id,
        **extra,
    }
    async with http.session.post(http.sandbox.url + "/_sandbox/interactions/click", json=body) as response:
        return response.status, await response.json()


async def answer(http: SandboxHttp, interaction: JSON, body: Any, query: str = "") -> tuple[int, Any]:
    """The initial response, sent as discord.py sends it: without the bot's Authorization."""
    path = f"/interactions/{interaction['id']}/{interaction['token']}/callback{query}"
    response, data = await http.call("POST", path, json=body, auth=False)
    return response.status, data


def webhook(http: SandboxHttp, interaction: JSON, suffix: str = "") -> str:
    return f"/webhooks/{http.sandbox.fixture.application.id}/{interaction['token']}{suffix}"


async def stats(http: SandboxHttp) -> JSON:
    counts: JSON = await http.control("GET", "/_sandbox/interactions/stats")
    return counts


@asynccontextmanager
async def clicked(
    http: SandboxHttp, sandbox: Sandbox, message: JSON, intents: int = GUILDS | GUILD_MESSAGES, **extra: Any
) -> AsyncIterator[tuple[Listener, JSON, asyncio.Task[tuple[int, JSON]]]]:
    """A gateway session, a click on ``message`` under way, and the INTERACTION_CREATE it sent."""
    async with listening(sandbox, intents) as gateway:
        task = asyncio.create_task(click(http, sandbox.fixture, message, **extra))
        try:
            event = await gateway.next_named("INTERACTION_CREATE")
            yield gateway, event, task
        finally:
            if not task.done():
                task.cancel()


# -- the click and its INTERACTION_CREATE --------------------------------------------------------


async def test_a_click_arrives_as_interaction_create_without_any_intent(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture
) -> None:
    message = await post_poll(http, fixture)
    playground = guild_id(fixture, "Polly Playground")
    bob = user_id(fixture, "bob")
    async with clicked(http, sandbox, message, intents=0, wait=0) as (_, event, task):
        status, seen = await task
    assert status == 200
    assert seen["interaction_id"] == event["id"] and seen["answered"] is False and seen["response"] is None
    assert event["type"] == 3 and event["version"] == 1 and event["context"] == 0
    assert event["application_id"] == str(fixture.application.id)
    assert (event["guild_id"], event["channel_id"]) == (str(playground), message["channel_id"])
    assert event["data"] == {"custom_id": "vote:1", "component_type": 2, "id": 2}
    assert event["message"]["id"] == message["id"]
    assert event["message"]["components"] == message["components"]
    assert event["member"]["user"]["id"] == str(bob)
    assert set(event["member"]["roles"]) == {
        str(role_id(fixture, "Polly Playground", "Moderators")),
        str(role_id(fixture, "Polly Playground", "Poll Voters")),
    }
    bobs = discord.Permissions(int(event["member"]["permissions"]))
    assert bobs.view_channel and bobs.manage_messages and not bobs.administrator
    assert event["channel"]["id"] == message["channel_id"]
    assert event["channel"]["permissions"] == event["member"]["permissions"]
    assert discord.Permissions(int(event["app_permissions"])).manage_roles
    assert event["authorizing_integration_owners"] == {"0": str(playground)}
    assert event["entitlements"] == [] and event["locale"] == event["guild_locale"] == "en-US"
    assert len(event["token"]) > 60 and int(event["id"]) > int(message["id"])


async def test_a_click_goes_to_its_guilds_shard_only(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture
) -> None:
    message = await post_poll(http, fixture)
    playground = guild_id(fixture, "Polly Playground")
    other_shard = next(
        guild
        for guild in fixture.guilds
        if (guild.id >> 22) % 2 != (playground >> 22) % 2 and guild.name != "Elsewhere"
    )
    token = sandbox.fixture.bot.token
    async with aiohttp.ClientSession() as session, session.ws_connect(sandbox.gateway_url) as ws:
        elsewhere = Listener(ws)
        await elsewhere.receive()
        shard = [(other_shard.id >> 22) % 2, 2]
        await ws.send_json(
            {"op": 2, "d": {"token": token, "intents": GUILDS, "properties": {}, "shard": shard}}
        )
        ready = await elsewhere.receive()
        for _ in ready["d"]["guilds"]:
            await elsewhere.receive()
        status, _ = await click(http, fixture, message, wait=0)
        assert status == 200
        # Something on the session's own shard: the first thing it hears, the click unheard.
        role = other_shard.roles[-1]
        await http.control("PATCH", f"/_sandbox/guilds/{other_shard.id}/roles/{role.id}", {"name": "Heard"})
        assert (await elsewhere.dispatch())["t"] == "GUILD_ROLE_UPDATE"


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"user_id": "1"}, 404, "is not a fixture user"),
        ({"user_id": "{bot}"}, 400, "The bot cannot click"),
        ({"user_id": "{erin}"}, 403, "is not a member of guild"),
        ({"custom_id": "vote:9"}, 404, "has no button with custom_id 'vote:9'"),
        ({"custom_id": "closed"}, 409, "is disabled"),
        ({"message_id": "1"}, 404, "Unknown message 1"),
        ({"channel_id": "1"}, 404, "Unknown channel 1"),
        ({"wait": 16}, 400, "Not a click: wait"),
        ({"custom_id": None}, 400, "Not a click: custom_id"),
    ],
)
async def test_refused_clicks_say_why(
    http: SandboxHttp, fixture: Fixture, change: JSON, status: int, words: str
) -> None:
    message = await post_poll(http, fixture)
    ids = {"{bot}": str(fixture.bot.id), "{erin}": str(user_id(fixture, "erin"))}
    body = {
        "user_id": str(user_id(fixture, "bob")),
        "channel_id": message["channel_id"],
        "message_id": message["id"],
        "custom_id": "vote:1",
        **{key: ids.get(value, value) if isinstance(value, str) else value for key, value in change.items()},
    }
    async with http.session.post(http.sandbox.url + "/_sandbox/interactions/click", json=body) as response:
        assert response.status == status
        assert words in (await response.json())["message"]
    assert (await stats(http))["created"] == 0


async def test_a_user_who_cannot_see_the_channel_cannot_click(http: SandboxHttp, fixture: Fixture) -> None:
    # #staff hides itself from @everyone; carol holds no role that shows it.
    staff = channel_id(fixture, "Polly Playground", "staff")
    body = {
        "user_id": str(user_id(fixture, "carol")),
        "channel_id": str(staff),
        "message_id": "1",
        "custom_id": "x",
    }
    async with http.session.post(http.sandbox.url + "/_sandbox/interactions/click", json=body) as response:
        assert response.status == 403
        assert "no VIEW_CHANNEL" in (await response.json())["message"]


async def test_another_applications_buttons_cannot_be_clicked(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture
) -> None:
    message = await post_poll(http, fixture)
    guild = sandbox.state.guilds[guild_id(fixture, "Polly Playground")]
    guild.messages[polls(fixture)][int(message["id"])].author_id = user_id(fixture, "alice")
    status, body = await click(http, fixture, message)
    assert status == 409 and "not the bot's" in body["message"]


# -- the initial response ----------------------------------------------------------------------


async def test_a_public_answer_posts_a_message_in_the_channel(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture
) -> None:
    message = await post_poll(http, fixture)
    async with clicked(http, sandbox, message) as (gateway, event, task):
        status, body = await answer(http, event, {"type": 4, "data": {"content": "Counted your vote"}})
        assert (status, body) == (204, None)
        created = await gateway.next_named("MESSAGE_CREATE")
        _, seen = await task
    assert created["content"] == "Counted your vote" and created["flags"] == 0
    assert created["webhook_id"] == created["application_id"] == str(fixture.application.id)
    assert created["interaction_metadata"] == {
        "id": event["id"],
        "type": 3,
        "user": event["member"]["user"],
        "authorizing_integration_owners": {"0": event["guild_id"]},
        "interacted_message_id": message["id"],
    }
    assert seen["answered"] is True and seen["ephemeral"] is False
    assert seen["response"] == {"type": 4, "data": {"content": "Counted your vote"}}
    assert seen["original_response"] == {
        key: value for key, value in created.items() if key not in ("guild_id", "member")
    }
    assert seen["message"]["id"] == message["id"]
    assert [m["id"] for m in await kept(http, polls(fixture))][-1] == created["id"]
    assert await stats(http) == {
        "created": 1,
        "answered": 1,
        "unanswered": 0,
        "late_responses": 0,
        "duplicate_responses": 0,
    }


async def test_an_ephemeral_answer_is_seen_only_by_who_clicked(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture
) -> None:
    message = await post_poll(http, fixture)
    async with clicked(http, sandbox, message) as (gateway, event, task):
        status, body = await answer(
            http, event, {"type": 4, "data": {"content": "Only you", "flags": 64}}, "?with_response=true"
        )
        assert status == 200
        # Nothing is dispatched for it: the next message anyone hears of is the bot's next post.
        await http.call("POST", f"/channels/{polls(fixture)}/messages", json={"content": "Next"})
        assert (await gateway.next_named("MESSAGE_CREATE"))["content"] == "Next"
        _, seen = await task
    assert body["interaction"] == {
        "id": event["id"],
        "type": 3,
        "channel_id": event["channel_id"],
        "guild_id": event["guild_id"],
        "response_message_id": body["resource"]["message"]["id"],
        "response_message_loading": False,
        "response_message_ephemeral": True,
    }
    assert body["resource"]["type"] == 4 and body["resource"]["message"]["flags"] == 64
    assert seen["ephemeral"] is True and seen["original_response"] == body["resource"]["message"]
    assert "Only you" not in [m["content"] for m in await kept(http, polls(fixture))]
    response, _ = await http.call(
        "GET", f"/channels/{polls(fixture)}/messages/{body['resource']['message']['id']}"
    )
    assert response.status == 404


async def test_update_message_edits_the_clicked_message(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture
) -> None:
    message = await post_poll(http, fixture)
    closed = [row(button("vote:1", "Pizza", disabled=True))]
    async with clicked(http, sandbox, message) as (gateway, event, task):
        status, body = await answer(
            http, event, {"type": 7, "data": {"content": "Closed", "components": closed}}, "?with_response=1"
        )
        assert status == 200
        updated = await gateway.next_named("MESSAGE_UPDATE")
        _, seen = await task
    assert updated["id"] == message["id"] and updated["content"] == "Closed"
    assert body["resource"]["type"] == 7 and body["resource"]["message"]["content"] == "Closed"
    assert body["interaction"]["response_message_id"] == message["id"]
    assert (
        seen["message"]["content"] == "Closed"
        and seen["message"]["components"][0]["components"][0]["disabled"]
    )
    assert seen["ephemeral"] is False
    _, fetched = await http.call("GET", f"/channels/{polls(fixture)}/messages/{message['id']}")
    assert fetched["content"] == "Closed" and fetched["edited_timestamp"] is not None
    # The button is now disabled: no one can click it.
    status, refused = await click(http, fixture, message)
    assert status == 409 and "disabled" in refused["message"]


async def test_deferred_answers_are_filled_in_through_original(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture
) -> None:
    message = await post_poll(http, fixture)
    async with clicked(http, sandbox, message) as (gateway, event, task):
        status, body = await answer(http, event, {"type": 5}, "?with_response=true")
        assert status == 200 and "resource" not in body
        assert body["interaction"]["response_message_loading"] is True
        thinking = await gateway.next_named("MESSAGE_CREATE")
        assert thinking["flags"] == 128 and thinking["content"] == ""
        response, edited = await http.call(
            "PATCH",
            webhook(http, event, "/messages/@original"),
            json={"content": "Done thinking"},
            auth=False,
        )
        assert response.status == 200 and edited["flags"] == 0
        update = await gateway.next_named("MESSAGE_UPDATE")
        await task
    assert update["id"] == thinking["id"] == body["interaction"]["response_message_id"]
    assert update["content"] == "Done thinking"

    # 6 acknowledges; @original is then the clicked message itself.
    async with clicked(http, sandbox, message, custom_id="vote:2") as (gateway, event, task):
        assert (await answer(http, event, {"type": 6}))[0] == 204
        _, seen = await task
        assert seen["answered"] is True and seen["response"] == {"type": 6, "data": {}}
        response, edited = await http.call(
            "PATCH", webhook(http, event, "/messages/@original"), json={"content": "Tally: 1"}, auth=False
        )
        assert response.status == 200 and edited["id"] == message["id"]
        assert (await gateway.next_named("MESSAGE_UPDATE"))["content"] == "Tally: 1"


async def test_a_second_answer_is_already_acknowledged(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture
) -> None:
    message = await post_poll(http, fixture)
    async with clicked(http, sandbox, message) as (_, event, task):
        assert (await answer(http, event, {"type": 6}))[0] == 204
        status, body = await answer(http, event, {"type": 4, "data": {"content": "Again"}})
        await task
    assert (status, body) == (400, {"message": "Interaction has already been acknowledged.", "code": 40060})
    assert (await stats(http))["duplicate_responses"] == 1
    # Two answers at once: one is taken, the other refused.
    async with clicked(http, sandbox, message) as (_, event, task):
        racing = await asyncio.gather(*(answer(http, event, {"type": 6}) for _ in range(2)))
        await task
    assert sorted(status for status, _ in racing) == [204, 400]
    assert (await stats(http))["answered"] == 2


async def test_unknown_interactions_and_wrong_tokens(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture
) -> None:
    message = await post_poll(http, fixture)
    async with clicked(http, sandbox, message) as (_, event, task):
        for wrong in (
            {**event, "token": event["token"][:-2] + "xx"},
            {**event, "id": "1"},
            {**event, "id": "nope"},
        ):
            assert await answer(http, wrong, {"type": 6}) == (
                404,
                {"message": "Unknown interaction", "code": 10062},
            )
        # None of those consumed the interaction.
        assert (await answer(http, event, {"type": 6}))[0] == 204
        await task


async def test_the_window_closes_after_three_seconds(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture, clock: Clock
) -> None:
    message = await post_poll(http, fixture)
    async with clicked(http, sandbox, message, wait=0) as (_, event, task):
        _, seen = await task
        assert seen["answered"] is False
        clock.advance(2.9)
        assert (await stats(http))["unanswered"] == 0
        clock.advance(0.2)
        assert await answer(http, event, {"type": 6}) == (
            404,
            {"message": "Unknown interaction", "code": 10062},
        )
    assert await stats(http) == {
        "created": 1,
        "answered": 0,
        "unanswered": 1,
        "late_responses": 1,
        "duplicate_responses": 0,
    }


async def test_a_click_waits_out_a_shortened_window(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture
) -> None:
    config = await http.control("PATCH", "/_sandbox/interactions/config", {"response_window": 0.2})
    assert config == {"response_window": 0.2, "token_ttl": 900.0}
    message = await post_poll(http, fixture)
    async with clicked(http, sandbox, message, wait=10) as (_, event, task):
        started = time.monotonic()
        _, seen = await task
        assert time.monotonic() - started < 5
        assert seen["answered"] is False and seen["response"] is None
        assert (await answer(http, event, {"type": 6}))[1]["code"] == 10062
    assert (await stats(http))["unanswered"] == 1
    reset = await http.control("POST", "/_sandbox/stats/reset")
    assert reset["total"] == 0
    assert set((await stats(http)).values()) == {0}
    async with http.session.patch(
        http.sandbox.url + "/_sandbox/interactions/config", json={"response_window": -1}
    ) as response:
        assert response.status == 400 and "response_window" in (await response.json())["message"]


@pytest.mark.parametrize(
    ("body", "code", "where"),
    [
        ({"type": 1}, 50035, "Value must be one of {4, 5, 6, 7, 9, 12}."),
        ({"type": 99}, 50035, "Value must be one of {1, 4, 5, 6, 7, 8, 9, 12, 13}."),
        ({"type": "4"}, 50035, "type"),
        ({}, 50035, "This field is required"),
        ({"type": 4}, 50006, "Cannot send an empty message"),
        ({"type": 4, "data": {"content": "x" * 2001}}, 50035, "content"),
        (
            {"type": 7, "data": {"components": [row(*[button(str(n)) for n in range(6)])]}},
            50035,
            "components",
        ),
        ({"type": 9, "data": {}}, 0, "does not model"),
    ],
)
async def test_invalid_answers_are_refused_and_leave_the_interaction_open(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture, body: JSON, code: int, where: str
) -> None:
    message = await post_poll(http, fixture)
    async with clicked(http, sandbox, message) as (_, event, task):
        status, refused = await answer(http, event, body)
        assert (status, refused["code"]) == (400, code)
        assert where in str(refused)
        assert (await answer(http, event, {"type": 6}))[0] == 204
        await task


# -- follow-ups and the token --------------------------------------------------------------------


async def test_follow_ups_and_the_tokens_lifetime(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture, clock: Clock
) -> None:
    message = await post_poll(http, fixture)
    async with clicked(http, sandbox, message) as (gateway, event, task):
        # Discord makes the webhook with the initial response.
        response, early = await http.call("POST", webhook(http, event), json={"content": "Early"}, auth=False)
        assert (response.status, early["code"]) == (404, 10015)
        _, answered = await answer(
            http, event, {"type": 4, "data": {"content": "Hi", "flags": 64}}, "?with_response=true"
        )
        original = answered["resource"]["message"]
        await task

        response, public = await http.call(
            "POST", webhook(http, event), json={"content": "Results soon"}, auth=False
        )
        assert response.status == 200
        created = await gateway.next_named("MESSAGE_CREATE")
        assert created["id"] == public["id"] and created["flags"] == 0
        assert public["interaction_metadata"]["original_response_message_id"] == original["id"]
        response, private = await http.call(
            "POST", webhook(http, event), json={"content": "Just you", "flags": 64}, auth=False
        )
        assert response.status == 200 and private["flags"] == 64
        response, edited = await http.call(
            "PATCH", webhook(http, event, "/messages/@original"), json={"content": "Hi again"}, auth=False
        )
        assert response.status == 200 and edited["id"] == original["id"] and edited["flags"] == 64
        response, fetched = await http.call("GET", webhook(http, event, "/messages/@original"), auth=False)
        assert fetched["content"] == "Hi again"

        seen = await http.control("GET", f"/_sandbox/interactions/{event['id']}")
        assert [m["content"] for m in seen["followups"]] == ["Results soon", "Just you"]
        assert seen["original_response"]["content"] == "Hi again" and seen["ephemeral"] is True
        channel = [m["content"] for m in await kept(http, polls(fixture))]
        assert "Results soon" in channel and "Just you" not in channel and "Hi again" not in channel

        response, wrong_app = await http.call(
            "POST", f"/webhooks/1/{event['token']}", json={"content": "x"}, auth=False
        )
        assert (response.status, wrong_app["code"]) == (404, 10015)

        clock.advance(15 * 60 + 1)
        invalid = {"message": "Invalid Webhook Token", "code": 50027}
        for method, path in (
            ("POST", webhook(http, event)),
            ("PATCH", webhook(http, event, "/messages/@original")),
        ):
            response, body = await http.call(method, path, json={"content": "Too late"}, auth=False)
            assert (response.status, body) == (401, invalid)


async def test_the_tokens_lifetime_is_a_setting(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture, clock: Clock
) -> None:
    await http.control("PATCH", "/_sandbox/interactions/config", {"token_ttl": 60})
    message = await post_poll(http, fixture)
    async with clicked(http, sandbox, message) as (_, event, task):
        await answer(http, event, {"type": 6})
        await task
        clock.advance(59)
        response, _ = await http.call("POST", webhook(http, event), json={"content": "In time"}, auth=False)
        assert response.status == 200
        clock.advance(2)
        response, body = await http.call("POST", webhook(http, event), json={"content": "Late"}, auth=False)
        assert (response.status, body["code"]) == (401, 50027)
    # The sandbox forgets it then.
    async with http.session.get(http.sandbox.url + f"/_sandbox/interactions/{event['id']}") as gone:
        assert gone.status == 404


# -- middlewares ---------------------------------------------------------------------------------


async def test_interaction_routes_are_counted_faulted_and_outside_the_global_limit(
    http: SandboxHttp, sandbox: Sandbox, fixture: Fixture
) -> None:
    message = await post_poll(http, fixture)
    route = "/interactions/{interaction_id}/{interaction_token}/callback"
    await http.control("POST", "/_sandbox/faults", {"method": "POST", "route": route, "status": 503})
    await http.control("POST", "/_sandbox/ratelimits", {"global_per_second": 1})
    await http.control("POST", "/_sandbox/stats/reset")
    async with clicked(http, sandbox, message) as (_, event, task):
        # The bot spends its global limit; the callback is not held to it.
        assert (await http.call("GET", "/users/@me"))[0].status == 200
        assert (await http.call("GET", "/users/@me"))[0].status == 429
        assert (await answer(http, event, {"type": 6}))[0] == 503
        status, _ = await answer(http, event, {"type": 6})
        assert status == 204
        # A bot that sends its token anyway is answered the same.
        response, body = await http.call("POST", webhook(http, event), json={"content": "With a token"})
        assert response.status == 200, body
        assert "X-RateLimit-Bucket" in response.headers
        await task
    by_route = (await http.control("GET", "/_sandbox/stats"))["by_route"]
    assert by_route[f"POST {route}"] == 2
    assert by_route["POST /webhooks/{application_id}/{interaction_token}"] == 1


# -- discord.py ----------------------------------------------------------------------------------


async def test_discord_py_answers_a_click_ephemerally(
    bot: discord.Client, http: SandboxHttp, fixture: Fixture
) -> None:
    message = await post_poll(http, fixture)
    received: asyncio.Future[discord.Interaction] = asyncio.get_running_loop().create_future()
    followed_up: asyncio.Future[discord.WebhookMessage] = asyncio.get_running_loop().create_future()

    async def on_interaction(interaction: discord.Interaction) -> None:
        try:
            callback = await interaction.response.send_message("Only you can see this", ephemeral=True)
            assert callback.is_ephemeral() and isinstance(callback.resource, discord.InteractionMessage)
            received.set_result(interaction)
            followed_up.set_result(await interaction.followup.send("And this", ephemeral=True, wait=True))
        except Exception as error:  # surfaced to the test, not lost in discord.py's log
            for future in (received, followed_up):
                if not future.done():
                    future.set_exception(error)

    bot.event(on_interaction)
    status, seen = await click(http, fixture, message, custom_id="vote:2")
    assert status == 200
    assert seen["answered"] is True and seen["ephemeral"] is True
    response = seen["response"]
    assert response["type"] == 4 and response["data"]["flags"] == 64, response
    assert response["data"]["content"] == "Only you can see this"
    assert seen["original_response"]["content"] == "Only you can see this"
    interaction = await asyncio.wait_for(received, timeout=5)
    assert interaction.type is discord.InteractionType.component
    assert interaction.user.id == user_id(fixture, "bob") and isinstance(interaction.user, discord.Member)
    assert interaction.data is not None and interaction.data.get("custom_id") == "vote:2"
    assert interaction.message is not None and interaction.message.id == int(message["id"])
    assert interaction.channel is not None and interaction.channel.id == polls(fixture)
    assert interaction.guild_id == guild_id(fixture, "Polly Playground")
    assert interaction.permissions.view_channel and interaction.app_permissions.manage_roles
    follow_up = await asyncio.wait_for(followed_up, timeout=5)
    assert follow_up.flags.ephemeral
    again = await http.control("GET", f"/_sandbox/interactions/{seen['interaction_id']}")
    assert [m["content"] for m in again["followups"]] == ["And this"]
