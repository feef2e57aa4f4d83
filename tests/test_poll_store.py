"""The poll tables on SQLite and PostgreSQL: every write safe under concurrency, across
connections as across processes, and times kept as the instants they were given."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, insert
from sqlalchemy.exc import IntegrityError

from app.polls.record import OptionRecord, Pending, PollRecord, Status
from app.storage.ballots import BallotStore, PollNotOpen
from app.storage.database import Database
from app.storage.models import Ballot, Base
from app.storage.polls import PollStore, Refused
from tests.postgres import PostgresServer

pytestmark = pytest.mark.asyncio

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'polly.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = await server.create_database()
    try:
        yield server.url(name)
    finally:
        await server.drop_database(name)


@pytest_asyncio.fixture
async def stores(database_url: str) -> AsyncIterator[list[PollStore]]:
    """Two stores on two engines: two processes' view of one database."""
    databases = [Database(database_url), Database(database_url)]
    try:
        await databases[0].upgrade()
        yield [PollStore(database) for database in databases]
    finally:
        for database in databases:
            await database.close()


async def new_poll(store: PollStore, **changes: Any) -> PollRecord:
    values: dict[str, Any] = {
        "guild_id": "1", "channel_id": "2", "name": "Lunch", "question": "Where?",
        "status": Status.SCHEDULED.value, "opens_at": NOW, "closes_at": NOW + timedelta(hours=1),
        "timezone": "Europe/Berlin", "anonymous": False, "max_choices": 1, "results_visibility": "LIVE",
        "ping_role_id": None, "ping_on_open": False, "ping_on_close": False, "allowed_role_ids": [],
        "created_by": "user:1", "created_at": NOW, "updated_at": NOW, "version": 1,
        "pending": Pending.POST.value, "due_at": NOW, "attempts": 0, "posts": 0,
    }  # fmt: skip
    values.update(changes)
    return await store.create(values, [OptionRecord(0, "Pizza", "🍕"), OptionRecord(1, "Sushi", None)])


async def test_a_time_given_in_any_offset_is_the_same_instant_in_utc_with_the_zone_kept(
    stores: list[PollStore],
) -> None:
    berlin = timezone(timedelta(hours=1))
    opens = datetime(2026, 12, 24, 16, 0, tzinfo=berlin)  # 16:00 in Berlin is 15:00 UTC
    created = await new_poll(stores[0], opens_at=opens, closes_at=opens + timedelta(hours=2))
    read = (await stores[1].get_many([created.id]))[created.id]
    assert read.opens_at == opens and read.opens_at.utcoffset() == timedelta(0)
    assert (read.opens_at.hour, read.timezone) == (15, "Europe/Berlin")
    assert [(o.position, o.text, o.emoji) for o in read.options] == [(0, "Pizza", "🍕"), (1, "Sushi", None)]


async def test_of_many_concurrent_claims_on_two_connections_exactly_one_wins(stores: list[PollStore]) -> None:
    poll = await new_poll(stores[0])
    claims = await asyncio.gather(
        *(stores[i % 2].claim(poll.id, f"process-{i}", NOW, timedelta(seconds=30)) for i in range(20))
    )
    assert len([c for c in claims if c is not None]) == 1
    # The lease holds until it runs out; then another process may take the work over.
    lease = timedelta(seconds=30)
    assert await stores[1].claim(poll.id, "late", NOW + timedelta(seconds=10), lease) is None
    assert await stores[1].claim(poll.id, "late", NOW + timedelta(seconds=31), lease) is not None


async def test_of_concurrent_closes_one_wins_and_the_rest_see_the_closed_poll(
    stores: list[PollStore],
) -> None:
    poll = await new_poll(stores[0], status=Status.OPEN.value)
    outcomes = await asyncio.gather(
        *(
            stores[i % 2].change(poll.id, {"status": Status.CLOSED.value}, statuses=[Status.OPEN], now=NOW)
            for i in range(10)
        )
    )
    won = [o for o in outcomes if isinstance(o, PollRecord)]
    lost = [o for o in outcomes if isinstance(o, Refused)]
    assert len(won) == 1 and won[0].version == 2 and won[0].status is Status.CLOSED
    assert len(lost) == 9 and all(o.current is not None and o.current.status is Status.CLOSED for o in lost)


async def test_a_change_at_a_stale_version_is_refused_with_the_current_one(stores: list[PollStore]) -> None:
    poll = await new_poll(stores[0])
    scheduled = [Status.SCHEDULED]
    first = await stores[0].change(poll.id, {"name": "Dinner"}, statuses=scheduled, version=1, now=NOW)
    assert isinstance(first, PollRecord) and first.version == 2
    stale = await stores[1].change(poll.id, {"name": "Brunch"}, statuses=scheduled, version=1, now=NOW)
    assert isinstance(stale, Refused) and stale.current is not None
    assert (stale.current.version, stale.current.name) == (2, "Dinner")


async def test_one_ballot_per_user_per_poll(stores: list[PollStore]) -> None:
    poll = await new_poll(stores[0])
    row = {"poll_id": poll.id, "user_id": "42", "created_at": NOW, "updated_at": NOW}
    async with stores[0].database.session() as session, session.begin():
        await session.execute(insert(Ballot).values(**row))
    with pytest.raises(IntegrityError):
        async with stores[1].database.session() as session, session.begin():
            await session.execute(insert(Ballot).values(**row))


def choose(*positions: int) -> Any:
    return lambda before: frozenset(positions)


async def test_one_users_concurrent_votes_leave_one_ballot_and_exact_results(stores: list[PollStore]) -> None:
    poll = await new_poll(stores[0], status=Status.OPEN.value)
    ballots = [BallotStore(store.database) for store in stores]
    casts = await asyncio.gather(*(ballots[i % 2].vote(poll.id, 42, choose(i % 2), NOW) for i in range(20)))
    assert len({c.results.version for c in casts}) == 20  # they took turns
    [results] = (await ballots[0].results([poll.id])).values()
    assert results.voters == 1 and sum(results.counts) == 1
    last = max(casts, key=lambda c: c.results.version)  # the vote that went last stands
    assert await ballots[1].ballots([poll.id], 42) == {poll.id: last.after}


async def test_many_voters_at_once_are_all_counted(stores: list[PollStore]) -> None:
    poll = await new_poll(stores[0], status=Status.OPEN.value)
    ballots = [BallotStore(store.database) for store in stores]
    await asyncio.gather(
        *(ballots[user % 2].vote(poll.id, user, choose(user % 2), NOW) for user in range(60))
    )
    [results] = (await ballots[0].results([poll.id])).values()
    assert (results.counts, results.voters, results.version) == ((30, 30), 60, 60)
    retracted = await ballots[1].vote(poll.id, 7, choose(), NOW)
    assert retracted.results.counts == (30, 29) and retracted.results.voters == 59
    page = await ballots[0].voters(poll.id, 0, limit=100, after_ballot=None)
    assert sorted(user for _, user, _ in page) == list(range(0, 60, 2))


async def test_a_refused_change_writes_nothing_and_a_closed_poll_takes_no_vote(
    stores: list[PollStore],
) -> None:
    poll = await new_poll(stores[0], status=Status.OPEN.value)
    ballots = BallotStore(stores[0].database)
    await ballots.vote(poll.id, 1, choose(0), NOW)

    def refuse(before: frozenset[int]) -> frozenset[int]:
        raise ValueError("too many")

    with pytest.raises(ValueError, match="too many"):
        await ballots.vote(poll.id, 1, refuse, NOW)
    assert await ballots.ballots([poll.id], 1) == {poll.id: frozenset({0})}
    with pytest.raises(PollNotOpen) as closed:
        await ballots.vote(poll.id, 2, choose(1), NOW + timedelta(hours=2))  # after closesAt
    assert closed.value.status == "OPEN"
    [results] = (await ballots.results([poll.id])).values()
    assert (results.counts, results.voters) == ((1, 0), 1)


async def test_reading_many_polls_is_one_query(stores: list[PollStore]) -> None:
    created = [await new_poll(stores[0], name=f"Poll {i}") for i in range(12)]
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    engine = stores[1].database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        found = await stores[1].get_many([p.id for p in created])
        page = await stores[1].page(1, status=None, limit=5, before_id=None)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    polls = [s for s in statements if "polls" in s]
    assert len(found) == 12 and all(len(p.options) == 2 for p in found.values())
    assert [p.name for p in page] == [f"Poll {i}" for i in range(11, 6, -1)]  # newest first
    assert len(polls) == 2, statements  # one for the twelve, one for the page


async def test_a_scheduler_keeps_what_it_posted_even_when_the_poll_changed_meanwhile(
    stores: list[PollStore],
) -> None:
    poll = await new_poll(stores[0])
    claimed = await stores[0].claim(poll.id, "scheduler", NOW, timedelta(seconds=30))
    assert claimed is not None
    # A user cancels while the scheduler is posting.
    cancelled = await stores[1].change(
        poll.id, {"status": Status.CANCELLED.value}, statuses=[Status.SCHEDULED], now=NOW
    )
    assert isinstance(cancelled, PollRecord)
    plan = {"status": Status.OPEN.value, "pending": None, "due_at": NOW + timedelta(hours=1)}
    applied = await stores[0].settle(claimed, "scheduler", {"message_id": "99", "posts": 1}, plan, NOW)
    assert applied is False
    after = (await stores[0].get_many([poll.id]))[poll.id]
    # The message is recorded, the cancel stands, and the message is due to show it.
    assert (after.message_id, after.posts, after.status) == (99, 1, Status.CANCELLED)
    assert after.pending is Pending.FINISH and after.due_at == NOW


async def test_the_migrations_build_exactly_the_models_tables(stores: list[PollStore]) -> None:
    def differences(connection: Any) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))

    async with stores[0].database.engine.connect() as connection:
        assert await connection.run_sync(differences) == []
