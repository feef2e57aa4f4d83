"""The scheduler in ``polly bot`` against the sandbox: on time, once, across processes and
restarts, pinging only the poll's validated role, and honest about what Discord refused."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from app.settings import database_url
from app.storage.database import Database
from app.storage.models import Poll
from tests.conftest import channel_id, role_id, wait_until
from tests.poll_stack import Polls, iso

pytestmark = pytest.mark.asyncio


async def close_soon(polls: Polls, poll_ids: list[str], seconds: float = 0.5) -> datetime:
    """Time passes: the polls' closing time comes ``seconds`` from now (the database is the
    clock the scheduler reads, so this is all a minute's wait would do)."""
    closes = datetime.now(UTC) + timedelta(seconds=seconds)
    database = Database(database_url(polls.api.settings))
    try:
        async with database.session() as session, session.begin():
            await session.execute(
                update(Poll)
                .where(Poll.id.in_([int(p) for p in poll_ids]))
                .values(closes_at=closes, due_at=closes)
            )
    finally:
        await database.close()
    return closes


def posted_at(message: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(message["timestamp"])


async def test_two_bot_processes_open_and_close_each_poll_once_and_on_time(stack: Polls) -> None:
    await stack.start_bot()
    await stack.start_bot()
    opens = datetime.now(UTC) + timedelta(seconds=2)
    created = [
        await stack.create(name=f"Poll {i}", opensAt=iso(opens), pingRoleId=str(stack.role), pingOnClose=True)
        for i in range(6)
    ]
    ids = [p["id"] for p in created]
    opened = [await stack.until_status(poll_id, "OPEN", within=15) for poll_id in ids]
    messages = await stack.messages()
    assert sorted(m["id"] for m in messages) == sorted(p["messageId"] for p in opened)  # once each
    assert all(posted_at(m) >= opens for m in messages)  # not before its time

    closes = await close_soon(stack, ids)
    for poll_id in ids:
        closed = await stack.until_status(poll_id, "CLOSED", within=15)
        assert closed["problem"] is None

    async def results_posted() -> bool:
        return len(await stack.messages()) == 12

    await wait_until(results_posted, within=15)
    results = (await stack.messages())[6:]
    assert all(posted_at(m) >= closes for m in results)
    assert all(m["mention_roles"] == [str(stack.role)] for m in results)
    snapshot = stack.api.sandbox.stats.snapshot()
    assert "429" not in snapshot["by_status"], snapshot  # the two processes shared the limits
    stats = snapshot["by_route"]
    assert stats.get("POST /channels/{channel_id}/messages") == 12, stats  # no post twice
    # Six closing edits; nothing else was edited.
    assert stats.get("PATCH /channels/{channel_id}/messages/{message_id}") == 6, stats
    assert (await stack.messages())[0]["components"][0]["components"][0]["disabled"] is True


async def test_a_poll_due_while_no_bot_runs_opens_when_one_starts(stack: Polls) -> None:
    poll = await stack.create()  # opens now, with no scheduler running
    assert (await stack.get(poll["id"]))["status"] == "SCHEDULED"
    await stack.start_bot()
    opened = await stack.until_status(poll["id"], "OPEN", within=15)
    [message] = await stack.messages()
    assert message["id"] == opened["messageId"]


async def test_a_bot_restarted_mid_schedule_posts_nothing_twice(stack: Polls) -> None:
    first = await stack.start_bot()
    poll = await stack.create(name="Before")
    await stack.until_status(poll["id"], "OPEN")
    first.stop.set()
    assert first.task is not None
    await asyncio.wait_for(first.task, timeout=20)
    later = await stack.create(name="While down")
    await stack.start_bot()
    await stack.until_status(later["id"], "OPEN", within=15)
    assert [m["embeds"][0]["title"] for m in await stack.messages()] == ["Before", "While down"]


async def test_a_post_made_before_a_crash_is_found_again_by_its_nonce(stack: Polls) -> None:
    poll = await stack.create()
    # A scheduler posted and died before recording it: the same nonce, as it sends it.
    response, first = await stack.http.call(
        "POST",
        f"/channels/{stack.channel}/messages",
        json={"content": "posted before the crash", "nonce": f"po{poll['id']}n0", "enforce_nonce": True},
    )
    assert response.status == 200, first
    await stack.start_bot()
    opened = await stack.until_status(poll["id"], "OPEN", within=15)
    assert opened["messageId"] == first["id"]
    assert [m["id"] for m in await stack.messages()] == [first["id"]]


async def test_mentions_in_what_users_wrote_ping_nobody(polls: Polls) -> None:
    fixture = polls.api.sandbox.fixture
    other = role_id(fixture, "Polly Playground", "Poll Voters")
    owner = fixture.guilds[0].owner_id
    sneaky = f"@everyone @here <@&{other}> <@{owner}>"
    poll = await polls.create(
        name=f"Vote {sneaky}"[:200],
        question=f"Hey {sneaky}, which one?",
        options=[{"text": f"@everyone {i}"} for i in range(2)],
        pingRoleId=str(polls.role),
        pingOnClose=True,
    )
    await polls.until_status(poll["id"], "OPEN")
    [opening] = await polls.messages()
    await polls.run("mutation($id: ID!) { closePoll(id: $id) { id } }", {"id": poll["id"]})

    async def both_sent() -> bool:
        return len(await polls.messages()) == 2

    await wait_until(both_sent, within=10)
    [edited, results] = await polls.messages()
    for message in (opening, results):
        assert message["mention_roles"] == [str(polls.role)]
        assert message["mention_everyone"] is False and message["mentions"] == []
    # The closing edit clears the content: an edit pings nobody.
    assert edited["mention_roles"] == [] and edited["mention_everyone"] is False


async def test_a_ping_role_deleted_before_opening_posts_without_a_ping(stack: Polls) -> None:
    poll = await stack.create(pingRoleId=str(stack.role))
    response, _ = await stack.http.call("DELETE", f"/guilds/{stack.guild}/roles/{stack.role}")
    assert response.status == 204
    await stack.start_bot()
    opened = await stack.until_status(poll["id"], "OPEN", within=15)
    assert opened["problem"]["code"] == "PING_ROLE_INVALID"
    assert str(stack.role) in opened["problem"]["message"] and "deleted" in opened["problem"]["message"]
    [message] = await stack.messages()
    assert message["mention_roles"] == [] and message["content"] == ""


async def test_a_missing_permission_is_a_problem_retried_until_it_is_given(polls: Polls) -> None:
    bot_id = polls.api.sandbox.fixture.bot.id
    channel = channel_id(polls.api.sandbox.fixture, "Polly Playground", "general")
    send_messages = 1 << 11
    overwrite = f"/channels/{channel}/permissions/{bot_id}"
    poll = await polls.create(channelId=str(channel), opensAt=iso(datetime.now(UTC) + timedelta(seconds=2)))
    response, body = await polls.http.call("PUT", overwrite, json={"type": 1, "deny": str(send_messages)})
    assert response.status == 204, body

    async def problem_reported() -> bool:
        found = await polls.get(poll["id"])
        return found["problem"] is not None

    await wait_until(problem_reported, within=15)
    stuck = await polls.get(poll["id"])
    assert stuck["status"] == "SCHEDULED" and stuck["problem"]["code"] == "MISSING_PERMISSIONS"
    assert "Send Messages" in stuck["problem"]["message"]
    response, body = await polls.http.call("DELETE", overwrite)
    assert response.status == 204, body
    opened = await polls.until_status(poll["id"], "OPEN", within=20)
    assert opened["problem"] is None
    assert len(await polls.messages(channel)) == 1


async def test_a_deleted_channel_ends_its_poll_and_keeps_its_data(polls: Polls) -> None:
    poll = await polls.create(name="Doomed")
    await polls.until_status(poll["id"], "OPEN")
    await polls.http.control("DELETE", f"/_sandbox/channels/{polls.channel}")
    closed = await polls.until_status(poll["id"], "CLOSED", within=10)
    assert closed["problem"]["code"] == "CHANNEL_DELETED"
    assert closed["name"] == "Doomed" and [o["text"] for o in closed["options"]] == ["Pizza", "Sushi"]
    reopen = "mutation($id: ID!, $c: DateTime!) { reopenPoll(id: $id, closesAt: $c) { id } }"
    body = await polls.run(reopen, {"id": poll["id"], "c": iso(datetime.now(UTC) + timedelta(hours=1))})
    assert body["errors"][0]["extensions"]["code"] == "CONFLICT"


async def test_a_poll_no_bot_posted_in_its_time_closes_saying_so_and_reopens_as_a_new_post(
    stack: Polls,
) -> None:
    poll = await stack.create()
    await close_soon(stack, [poll["id"]], seconds=0)  # its whole time passes with no bot running
    await stack.start_bot()
    closed = await stack.until_status(poll["id"], "CLOSED", within=15)
    assert closed["messageId"] is None and closed["problem"]["code"] == "NEVER_POSTED"
    reopen = (
        "mutation($id: ID!, $c: DateTime!) { reopenPoll(id: $id, closesAt: $c) { status problem { code } } }"
    )
    body = await stack.run(reopen, {"id": poll["id"], "c": iso(datetime.now(UTC) + timedelta(hours=1))})
    assert body["data"]["reopenPoll"] == {"status": "SCHEDULED", "problem": None}
    opened = await stack.until_status(poll["id"], "OPEN", within=15)
    assert [m["id"] for m in await stack.messages()] == [opened["messageId"]]
