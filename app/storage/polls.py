"""Polls in the database: every write is one conditional UPDATE on what the writer read, so two
API replicas, two schedulers, or a scheduler and a user can never both win the same change."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.orm import joinedload

from app.polls.record import OptionRecord, Pending, PollRecord, Status
from app.storage.database import Database
from app.storage.models import Poll, PollOption

# Columns a caller may set through PollStore.change (the rest are the store's own).
WRITABLE = frozenset(
    {
        "channel_id", "name", "question", "status", "opens_at", "closes_at", "timezone", "anonymous",
        "max_choices", "results_visibility", "ping_role_id", "ping_on_open", "ping_on_close",
        "allowed_role_ids", "deleted_at", "pending", "due_at", "problem_code", "problem_message",
        "problem_at", "attempts",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Refused:
    """Why a conditional change matched no row: the poll as it is now (None: no such poll)."""

    current: PollRecord | None


# Columns clients see (Poll's fields): changing one grows the version.
VISIBLE = frozenset({"status", "message_id", "problem_code", "problem_message", "closes_at", "opens_at"})


def _bump(facts: Mapping[str, Any], plan: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    return {"version": Poll.version + 1, "updated_at": now} if VISIBLE & {*facts, *plan} else {}


def _with_options() -> Any:
    return select(Poll).options(joinedload(Poll.options))


class PollStore:
    def __init__(self, database: Database, *, edit_every: timedelta = timedelta(seconds=2)) -> None:
        self.database = database
        # How often at most a poll's message is edited to show new votes.
        self.edit_every = edit_every

    async def create(self, values: Mapping[str, Any], options: Sequence[OptionRecord]) -> PollRecord:
        async with self.database.session() as session, session.begin():
            row = Poll(**values)
            row.options = [PollOption(position=o.position, text=o.text, emoji=o.emoji) for o in options]
            session.add(row)
        return PollRecord.from_row(row)

    async def get_many(self, poll_ids: Iterable[int]) -> dict[int, PollRecord]:
        """Polls by id, deleted ones included, in one query (options joined)."""
        ids = list(dict.fromkeys(poll_ids))
        if not ids:
            return {}
        async with self.database.session() as session:
            rows = (await session.scalars(_with_options().where(Poll.id.in_(ids)))).unique().all()
        return {row.id: PollRecord.from_row(row) for row in rows}

    async def page(
        self, guild_id: int, *, status: Status | None, limit: int, before_id: int | None
    ) -> list[PollRecord]:
        """A guild's polls, newest first, deleted ones left out: one query."""
        query = (
            select(Poll.id)
            .where(Poll.guild_id == str(guild_id), Poll.deleted_at.is_(None))
            .order_by(Poll.id.desc())
            .limit(limit)
        )
        if status is not None:
            query = query.where(Poll.status == status.value)
        if before_id is not None:
            query = query.where(Poll.id < before_id)
        page = query.subquery()
        async with self.database.session() as session:
            rows = (
                (
                    await session.scalars(
                        _with_options().where(Poll.id.in_(select(page.c.id))).order_by(Poll.id.desc())
                    )
                )
                .unique()
                .all()
            )
        return [PollRecord.from_row(row) for row in rows]

    async def change(
        self,
        poll_id: int,
        values: Mapping[str, Any],
        *,
        statuses: Iterable[Status],
        version: int | None = None,
        options: Sequence[OptionRecord] | None = None,
        now: datetime,
        unleased: bool = False,
    ) -> PollRecord | Refused:
        """Apply ``values`` (and new options) if the poll is not deleted, is in one of
        ``statuses``, when given still at ``version``, and with ``unleased`` not being worked
        on by a scheduler; the version grows by one."""
        unknown = set(values) - WRITABLE
        if unknown:
            raise ValueError(f"PollStore.change cannot set {sorted(unknown)}")
        condition = [
            Poll.id == poll_id,
            Poll.deleted_at.is_(None),
            Poll.status.in_([s.value for s in statuses]),
        ]
        if version is not None:
            condition.append(Poll.version == version)
        if unleased:
            condition.append((Poll.lease_until.is_(None)) | (Poll.lease_until < now))
        async with self.database.session() as session, session.begin():
            result = await session.execute(
                update(Poll)
                .where(*condition)
                .values(**values, version=Poll.version + 1, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                row = (
                    (await session.scalars(_with_options().where(Poll.id == poll_id))).unique().one_or_none()
                )
                return Refused(
                    None if row is None or row.deleted_at is not None else PollRecord.from_row(row)
                )
            if options is not None:
                await session.execute(delete(PollOption).where(PollOption.poll_id == poll_id))
                session.add_all(
                    PollOption(poll_id=poll_id, position=o.position, text=o.text, emoji=o.emoji)
                    for o in options
                )
        fresh = await self.get_many([poll_id])
        return fresh[poll_id]

    # -- the scheduler's side -----------------------------------------------------------------

    async def due(self, now: datetime, limit: int) -> list[int]:
        """Polls whose Discord work is due and that no live lease holds, soonest first."""
        async with self.database.session() as session:
            rows = await session.scalars(
                select(Poll.id)
                .where(Poll.due_at <= now, (Poll.lease_until.is_(None)) | (Poll.lease_until < now))
                .order_by(Poll.due_at)
                .limit(limit)
            )
            return list(rows)

    async def claim(self, poll_id: int, owner: str, now: datetime, lease: timedelta) -> PollRecord | None:
        """Take the poll's due work for ``lease``: one conditional update, so exactly one
        process gets it however many ask at once; None when another got it first."""
        async with self.database.session() as session, session.begin():
            result = await session.execute(
                update(Poll)
                .where(
                    Poll.id == poll_id,
                    Poll.due_at <= now,
                    (Poll.lease_until.is_(None)) | (Poll.lease_until < now),
                )
                .values(lease_owner=owner, lease_until=now + lease)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return None
        return (await self.get_many([poll_id]))[poll_id]

    async def settle(
        self,
        claimed: PollRecord,
        owner: str,
        facts: Mapping[str, Any],
        plan: Mapping[str, Any],
        now: datetime,
    ) -> bool:
        """End a lease. ``facts`` (what happened on Discord: the message posted) are always
        kept; ``plan`` (status and next work) only if nobody changed the poll meanwhile —
        otherwise the work is due again at once, to be judged on the poll as it is now.
        Returns whether the plan was applied."""
        mine = Poll.lease_owner == owner
        release = {"lease_owner": None, "lease_until": None}
        async with self.database.session() as session, session.begin():
            result = await session.execute(
                update(Poll)
                .where(
                    Poll.id == claimed.id,
                    mine,
                    Poll.version == claimed.version,
                    Poll.results_version == claimed.results_version,
                )
                .values(**facts, **plan, **release, **_bump(facts, plan, now))
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                return True
            # Facts are truths about Discord, written whoever holds the lease now (another
            # process that took over posts with the same nonce, so it finds the same message).
            # The rest only if the lease is still ours: the work is due again at once, judged
            # on the poll as it is now.
            finished = (Status.CLOSED.value, Status.CANCELLED.value)
            ours: dict[str, Any] = {
                "lease_owner": case((mine, None), else_=Poll.lease_owner),
                "lease_until": case((mine, None), else_=Poll.lease_until),
                # Only votes came meanwhile: the message shows them at the next coalesced edit.
                "due_at": case(
                    (mine & (Poll.version == claimed.version), now + self.edit_every),
                    (mine, now),
                    else_=Poll.due_at,
                ),
                "pending": case(
                    (~mine, Poll.pending),
                    (Poll.deleted_at.is_not(None), Poll.pending),
                    (Poll.status.in_(finished), Pending.FINISH.value),
                    else_=Pending.EDIT.value,
                ),
            }
            await session.execute(
                update(Poll)
                .where(Poll.id == claimed.id)
                .values(**facts, **ours, **_bump(facts, {}, now))
                .execution_options(synchronize_session=False)
            )
        return False

    async def release(
        self, owner: str, poll_id: int | None = None, *, due_at: datetime | None = None
    ) -> None:
        """Give up ``owner``'s leases (of one poll, or all: a process stopping), the work due
        again at ``due_at`` (or as it was)."""
        condition = [Poll.lease_owner == owner]
        if poll_id is not None:
            condition.append(Poll.id == poll_id)
        values: dict[str, Any] = {"lease_owner": None, "lease_until": None}
        if due_at is not None:
            values["due_at"] = due_at
        async with self.database.session() as session, session.begin():
            await session.execute(
                update(Poll).where(*condition).values(**values).execution_options(synchronize_session=False)
            )

    async def by_status(self) -> dict[str, int]:
        """How many polls (not deleted) are in each status: one grouped count."""
        async with self.database.session() as session:
            rows = await session.execute(
                select(Poll.status, func.count()).where(Poll.deleted_at.is_(None)).group_by(Poll.status)
            )
            found = {str(status): int(count) for status, count in rows}
        return {status.value: found.get(status.value, 0) for status in Status}

    async def counts(self, poll_id: int) -> dict[int, int]:
        """Votes per option position, as every vote keeps them on the poll's row."""
        async with self.database.session() as session:
            stored = await session.scalar(select(Poll.vote_counts).where(Poll.id == poll_id))
        return dict(enumerate(stored or []))

    async def recheck_channel(self, channel_id: int, now: datetime) -> int:
        """Make the scheduler touch every running poll of a channel now (its message is edited,
        or posted: on a deleted channel either ends the poll). Returns how many."""
        async with self.database.session() as session, session.begin():
            result = await session.execute(
                update(Poll)
                .where(
                    Poll.channel_id == str(channel_id),
                    Poll.deleted_at.is_(None),
                    Poll.status.in_([Status.SCHEDULED.value, Status.OPEN.value]),
                )
                .values(
                    due_at=now,
                    pending=case((Poll.status == Status.OPEN.value, Pending.EDIT.value), else_=Poll.pending),
                    # A settle under way sees the poll changed, and judges it again at once.
                    version=Poll.version + 1,
                )
                .execution_options(synchronize_session=False)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]
