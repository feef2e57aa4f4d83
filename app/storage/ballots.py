"""Votes: one ballot per user per poll, changed in one transaction that holds the poll's row.

A vote's transaction first claims the poll's row with an UPDATE that only matches an open poll
(a row lock on PostgreSQL, the write lock on SQLite), so one poll's votes take turns: two votes
of one user, from a button and from GraphQL at once, cannot both see "no ballot yet", the
choice limit is checked against the ballot as it is, and the results kept on the row (counts
per option, voters) change by exactly what the ballot changed. The unique constraint on
(poll, user) stands behind all of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.polls.record import Pending, Status, Visibility
from app.storage.database import Database
from app.storage.models import Ballot, BallotChoice, Poll, PollOption

# A new ballot from the one before it; raises to refuse the vote (nothing is written then).
Change = Callable[[frozenset[int]], frozenset[int]]


@dataclass(frozen=True)
class Results:
    poll_id: int
    version: int
    counts: tuple[int, ...]  # votes per option position
    voters: int


@dataclass(frozen=True)
class Cast:
    before: frozenset[int]
    after: frozenset[int]
    results: Results

    @property
    def changed(self) -> bool:
        return self.before != self.after


class PollNotOpen(Exception):
    """The poll is not open (or does not exist): ``status`` says what it is, if anything."""

    def __init__(self, status: str | None) -> None:
        super().__init__(status or "missing")
        self.status = status


def _counts(stored: list[int] | None, options: int) -> list[int]:
    counts = list(stored or [])
    return counts + [0] * (options - len(counts))


class BallotStore:
    def __init__(self, database: Database, *, edit_every: timedelta = timedelta(seconds=2)) -> None:
        self.database = database
        # A poll's message shows live results edited at most this often, however fast votes come.
        self.edit_every = edit_every
        # One poll's votes take turns on its row anyway; queueing them here first leaves the
        # database one waiter per process instead of hundreds (SQLite's lock waits poll and
        # sleep, and a burst of waiters runs past its busy timeout).
        self._turns: dict[int, asyncio.Lock] = {}
        self._waiting: dict[int, int] = {}

    async def vote(self, poll_id: int, user_id: int, change: Change, now: datetime) -> Cast:
        turn = self._turns.setdefault(poll_id, asyncio.Lock())
        self._waiting[poll_id] = self._waiting.get(poll_id, 0) + 1
        try:
            async with turn:
                return await self._vote(poll_id, user_id, change, now)
        finally:
            self._waiting[poll_id] -= 1
            if not self._waiting[poll_id]:
                del self._waiting[poll_id], self._turns[poll_id]

    async def _vote(self, poll_id: int, user_id: int, change: Change, now: datetime) -> Cast:
        async with self.database.session() as session, session.begin():
            claimed = await session.execute(
                update(Poll)
                .where(
                    Poll.id == poll_id,
                    Poll.status == Status.OPEN.value,
                    Poll.closes_at > now,
                    Poll.deleted_at.is_(None),
                )
                .values(results_version=Poll.results_version + 1)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                status = await session.scalar(
                    select(Poll.status).where(Poll.id == poll_id, Poll.deleted_at.is_(None))
                )
                raise PollNotOpen(status)
            poll = (
                await session.execute(
                    select(
                        Poll.vote_counts, Poll.voters, Poll.results_version, Poll.results_visibility,
                        Poll.message_id, Poll.pending, Poll.due_at,
                    ).where(Poll.id == poll_id)
                )
            ).one()  # fmt: skip
            ballot_id = await session.scalar(
                select(Ballot.id).where(Ballot.poll_id == poll_id, Ballot.user_id == str(user_id))
            )
            before: frozenset[int] = frozenset()
            if ballot_id is not None:
                before = frozenset(
                    await session.scalars(
                        select(BallotChoice.position).where(BallotChoice.ballot_id == ballot_id)
                    )
                )
            after = change(before)
            options = await session.scalar(
                select(func.count()).select_from(PollOption).where(PollOption.poll_id == poll_id)
            )
            counts = _counts(poll.vote_counts, int(options or 0))
            for position in before - after:
                counts[position] -= 1
            for position in after - before:
                counts[position] += 1
            voters = poll.voters + (1 if after and not before else 0) - (1 if before and not after else 0)
            await self._write_ballot(session, poll_id, user_id, ballot_id, before, after, now)
            values: dict[str, object] = {"vote_counts": counts, "voters": voters}
            if after != before and poll.results_visibility == Visibility.LIVE.value and poll.message_id:
                # The message follows the votes, an edit at most every `edit_every`: the first
                # vote after an edit asks for one that much later, the next ones join it.
                soon = now + self.edit_every
                values["pending"] = poll.pending or Pending.EDIT.value
                values["due_at"] = soon if poll.due_at is None else min(poll.due_at, soon)
                if poll.pending not in (None, Pending.EDIT.value):
                    values.pop("pending")
            await session.execute(
                update(Poll)
                .where(Poll.id == poll_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        return Cast(before, after, Results(poll_id, poll.results_version, tuple(counts), voters))

    async def _write_ballot(
        self,
        session: AsyncSession,
        poll_id: int,
        user_id: int,
        ballot_id: int | None,
        before: frozenset[int],
        after: frozenset[int],
        now: datetime,
    ) -> None:
        if before == after:
            return
        if not after:
            if ballot_id is not None:
                await session.execute(delete(Ballot).where(Ballot.id == ballot_id))
            return
        if ballot_id is None:
            ballot_id = await session.scalar(
                insert(Ballot)
                .values(poll_id=poll_id, user_id=str(user_id), created_at=now, updated_at=now)
                .returning(Ballot.id)
            )
        else:
            await session.execute(update(Ballot).where(Ballot.id == ballot_id).values(updated_at=now))
            await session.execute(delete(BallotChoice).where(BallotChoice.ballot_id == ballot_id))
        await session.execute(
            insert(BallotChoice),
            [{"ballot_id": ballot_id, "position": p, "poll_id": poll_id} for p in sorted(after)],
        )

    async def results(self, poll_ids: list[int]) -> dict[int, Results]:
        """The results kept on the polls' rows (no ballot is counted), in one query."""
        if not poll_ids:
            return {}
        async with self.database.session() as session:
            rows = (
                await session.execute(
                    select(Poll.id, Poll.vote_counts, Poll.voters, Poll.results_version).where(
                        Poll.id.in_(poll_ids)
                    )
                )
            ).all()
            options = dict(
                (
                    await session.execute(
                        select(PollOption.poll_id, func.count())
                        .where(PollOption.poll_id.in_(poll_ids))
                        .group_by(PollOption.poll_id)
                    )
                ).all()
            )
        return {
            row.id: Results(
                row.id,
                row.results_version,
                tuple(_counts(row.vote_counts, options.get(row.id, 0))),
                row.voters,
            )
            for row in rows
        }

    async def ballots(self, poll_ids: list[int], user_id: int) -> dict[int, frozenset[int]]:
        """What one user chose in each of ``poll_ids`` (polls they did not vote in are absent)."""
        if not poll_ids:
            return {}
        async with self.database.session() as session:
            rows = await session.execute(
                select(BallotChoice.poll_id, BallotChoice.position)
                .join(Ballot, Ballot.id == BallotChoice.ballot_id)
                .where(Ballot.poll_id.in_(poll_ids), Ballot.user_id == str(user_id))
            )
            chosen: dict[int, set[int]] = {}
            for poll_id, position in rows.all():
                chosen.setdefault(poll_id, set()).add(position)
        return {poll_id: frozenset(positions) for poll_id, positions in chosen.items()}

    async def voters(
        self, poll_id: int, position: int | None, *, limit: int, after_ballot: int | None
    ) -> list[tuple[int, int, datetime]]:
        """(ballot id, user id, when) of a poll's voters (of one option, if given), oldest
        ballot first: a page."""
        query = select(Ballot.id, Ballot.user_id, Ballot.updated_at).where(Ballot.poll_id == poll_id)
        if position is not None:
            query = query.where(
                Ballot.id.in_(
                    select(BallotChoice.ballot_id).where(
                        BallotChoice.poll_id == poll_id, BallotChoice.position == position
                    )
                )
            )
        if after_ballot is not None:
            query = query.where(Ballot.id > after_ballot)
        async with self.database.session() as session:
            rows = (await session.execute(query.order_by(Ballot.id).limit(limit))).all()
        return [(row.id, int(row.user_id), row.updated_at) for row in rows]
