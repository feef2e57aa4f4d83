"""Votes from the poll message's buttons, clicked by fixture users through the sandbox: the
bot records each by the vote rules and answers within Discord's window, once per interaction."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from app.cache.interactions import InteractionLog
from app.polls.buttons import ButtonVotes, Click
from tests.conftest import RunningBot, role_id, wait_until
from tests.poll_stack import Polls
from tests.test_access_matrix import log_in
from tests.test_votes import VOTE, Person

pytestmark = pytest.mark.asyncio

READ = "query($p: ID!) { poll(id: $p) { results { voters options { votes } } } }"


def user(polls: Polls, name: str) -> str:
    return next(str(u.id) for u in polls.api.sandbox.fixture.users if u.username == name)


async def click(polls: Polls, poll: dict[str, Any], name: str, position: int) -> dict[str, Any]:
    answer: dict[str, Any] = await polls.http.control(
        "POST",
        "/_sandbox/interactions/click",
        {
            "user_id": user(polls, name),
            "channel_id": poll["channelId"],
            "message_id": poll["messageId"],
            "custom_id": f"poll:{poll['id']}:{position}",
        },
    )
    return answer


async def counts(polls: Polls, poll: dict[str, Any]) -> tuple[int, list[int]]:
    body = await polls.run(READ, {"p": poll["id"]})
    results = body["data"]["poll"]["results"]
    return results["voters"], [o["votes"] for o in results["options"]]


async def test_a_click_votes_and_the_voter_alone_is_told_what_they_chose(polls: Polls) -> None:
    poll = await polls.until_status((await polls.create())["id"], "OPEN")
    seen = await click(polls, poll, "carol", 0)
    assert seen["answered"] is True and seen["ephemeral"] is True, seen
    assert "You voted **Pizza**" in seen["response"]["data"]["content"]
    changed = await click(polls, poll, "carol", 1)  # single choice: a click sets the choice
    assert "You voted **Sushi**" in changed["response"]["data"]["content"]
    assert await counts(polls, poll) == (1, [0, 1])
    stats = await polls.http.control("GET", "/_sandbox/interactions/stats")
    assert stats["answered"] == 2 and stats["unanswered"] == 0


async def test_multiple_choice_toggles_and_refuses_past_the_limit(polls: Polls) -> None:
    three = [{"text": "A"}, {"text": "B"}, {"text": "C"}]
    poll = await polls.until_status((await polls.create(options=three, maxChoices=2))["id"], "OPEN")
    await click(polls, poll, "carol", 0)
    both = await click(polls, poll, "carol", 2)
    assert "**A**, **C**" in both["response"]["data"]["content"]
    refused = await click(polls, poll, "carol", 1)
    assert "at most 2" in refused["response"]["data"]["content"]
    removed = await click(polls, poll, "carol", 0)  # a second click on a chosen option removes it
    assert (
        "**C**" in removed["response"]["data"]["content"]
        and "**A**" not in removed["response"]["data"]["content"]
    )
    assert await counts(polls, poll) == (1, [0, 0, 1])


async def test_roles_and_closed_polls_are_refused_on_buttons_too(polls: Polls) -> None:
    voters_role = role_id(polls.api.sandbox.fixture, "Polly Playground", "Poll Voters")
    poll = await polls.until_status((await polls.create(allowedRoleIds=[str(voters_role)]))["id"], "OPEN")
    refused = await click(polls, poll, "carol", 0)  # carol lacks Poll Voters
    assert "Only members with one of the roles" in refused["response"]["data"]["content"]
    assert refused["response"]["data"].get("allowed_mentions") == {
        "parse": []
    }  # the role is named, not pinged
    allowed = await click(polls, poll, "bob", 0)
    assert "You voted" in allowed["response"]["data"]["content"]
    await polls.run("mutation($id: ID!) { closePoll(id: $id) { id } }", {"id": poll["id"]})
    assert await counts(polls, poll) == (1, [1, 0])


async def test_an_answer_past_discords_window_is_logged_and_the_vote_stands(
    polls: Polls, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="app.polls.buttons")
    poll = await polls.until_status((await polls.create())["id"], "OPEN")
    await polls.http.control("PATCH", "/_sandbox/interactions/config", {"response_window": 0.001})
    seen = await click(polls, poll, "carol", 1)
    assert seen["answered"] is False

    async def logged() -> bool:
        return any("answered too late" in r.getMessage() for r in caplog.records)

    await wait_until(logged, within=10)
    assert await counts(polls, poll) == (1, [0, 1])
    stats = await polls.http.control("GET", "/_sandbox/interactions/stats")
    assert stats["late_responses"] == 1 and stats["unanswered"] == 1


async def test_one_persons_click_and_graphql_vote_at_once_leave_one_ballot(polls: Polls) -> None:
    poll = await polls.until_status((await polls.create())["id"], "OPEN")
    bob = Person("bob", await log_in(polls.api, "bob"), polls.api.url)
    try:
        for round_ in range(5):
            await asyncio.gather(
                click(polls, poll, "bob", round_ % 2), bob.run(VOTE, p=poll["id"], pos=[(round_ + 1) % 2])
            )
            voters, votes = await counts(polls, poll)
            assert voters == 1 and sum(votes) == 1, (round_, votes)
    finally:
        await bob.client.aclose()


async def test_the_same_interaction_delivered_twice_counts_once(polls: Polls) -> None:
    three = [{"text": "A"}, {"text": "B"}, {"text": "C"}]
    poll = await polls.until_status((await polls.create(options=three, maxChoices=3))["id"], "OPEN")
    services = polls.api.services
    votes = services.results_export.votes  # the API process's own vote service and stores
    buttons = ButtonVotes(votes, votes.polls, services.discord, InteractionLog(services.role_cache))
    carol = int(user(polls, "carol"))
    delivered = Click(987654321, "not-a-real-token", f"poll:{poll['id']}:1", carol, frozenset())
    await buttons.handle(delivered)  # a toggle: applied twice it would undo itself
    await buttons.handle(delivered)
    assert await counts(polls, poll) == (1, [0, 1, 0])


async def test_an_anonymous_polls_voters_reach_no_log_line(
    polls: Polls, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, DEBUG included
    poll = await polls.until_status((await polls.create(anonymous=True))["id"], "OPEN")
    voters = [user(polls, name) for name in ("alice", "bob", "carol")]
    for name in ("alice", "bob", "carol"):
        await click(polls, poll, name, 0)
    await polls.run("mutation($id: ID!) { closePoll(id: $id) { id } }", {"id": poll["id"]})
    await polls.until_status(poll["id"], "CLOSED")
    ours = [r for r in caplog.records if r.name.startswith("app.") and not r.name.startswith("app.sandbox")]
    assert ours, "nothing of the product logged: the check would prove nothing"
    assert not [r.getMessage() for r in ours if any(v in r.getMessage() for v in voters)]
    [message] = await polls.messages()
    assert not any(v in str(message) for v in voters)


async def test_a_slow_vote_is_acknowledged_first_and_its_answer_edited_in(
    stack: Polls, bot_factory: Callable[..., Awaitable[RunningBot]], redis_url: str
) -> None:
    # Every vote counts as slow: the bot acknowledges at once, then tells the voter.
    await bot_factory(redis_url, data_dir=stack.api.settings.data_dir, interaction_defer_after=0)
    poll = await stack.until_status((await stack.create())["id"], "OPEN")
    seen = await click(stack, poll, "carol", 1)
    assert seen["answered"] is True and seen["response"]["type"] == 5 and seen["ephemeral"] is True
    told: dict[str, Any] = {}

    async def edited_in() -> bool:
        told.update(await stack.http.control("GET", f"/_sandbox/interactions/{seen['interaction_id']}"))
        original = told.get("original_response") or {}
        return "You voted **Sushi**" in (original.get("content") or "")

    await wait_until(edited_in, within=10)
    assert await counts(stack, poll) == (1, [0, 1])
