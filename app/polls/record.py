"""A poll as the rest of the program sees it: plain values, read from one database row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from app.storage.models import Poll


class Status(Enum):
    SCHEDULED = "SCHEDULED"
    OPEN = "OPEN"
    CLOSED = "CLOSED"
    CANCELLED = "CANCELLED"


class Visibility(Enum):
    LIVE = "LIVE"
    AFTER_CLOSE = "AFTER_CLOSE"


class Pending(Enum):
    """Discord work a poll is owed; the scheduler does it when ``due_at`` comes."""

    POST = "POST"  # post the poll's message (opening it)
    FINISH = "FINISH"  # show the final state: results at close, or cancelled; ping on close
    EDIT = "EDIT"  # show changed text, a new closing time, or buttons enabled again
    DELETE = "DELETE"  # delete the message of a deleted poll


@dataclass(frozen=True, slots=True)
class OptionRecord:
    position: int
    text: str
    emoji: str | None


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    message: str
    at: datetime


@dataclass(frozen=True)
class PollRecord:
    id: int
    guild_id: int
    channel_id: int
    name: str
    question: str
    options: tuple[OptionRecord, ...]
    status: Status
    opens_at: datetime
    closes_at: datetime
    timezone: str
    anonymous: bool
    max_choices: int
    results_visibility: Visibility
    ping_role_id: int | None
    ping_on_open: bool
    ping_on_close: bool
    allowed_role_ids: tuple[int, ...]
    message_id: int | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int
    deleted: bool
    problem: Problem | None
    pending: Pending | None
    due_at: datetime | None
    attempts: int
    posts: int
    leased_until: datetime | None = None  # a scheduler process is working on it until then
    results_version: int = 0  # grows with every vote

    @property
    def message_url(self) -> str | None:
        if self.message_id is None:
            return None
        return f"https://discord.com/channels/{self.guild_id}/{self.channel_id}/{self.message_id}"

    @classmethod
    def from_row(cls, row: Poll) -> PollRecord:
        problem = None
        if row.problem_code is not None and row.problem_at is not None:
            problem = Problem(row.problem_code, row.problem_message or "", row.problem_at)
        return cls(
            id=row.id,
            guild_id=int(row.guild_id),
            channel_id=int(row.channel_id),
            name=row.name,
            question=row.question,
            options=tuple(OptionRecord(o.position, o.text, o.emoji) for o in row.options),
            status=Status(row.status),
            opens_at=row.opens_at,
            closes_at=row.closes_at,
            timezone=row.timezone,
            anonymous=row.anonymous,
            max_choices=row.max_choices,
            results_visibility=Visibility(row.results_visibility),
            ping_role_id=None if row.ping_role_id is None else int(row.ping_role_id),
            ping_on_open=row.ping_on_open,
            ping_on_close=row.ping_on_close,
            allowed_role_ids=tuple(int(role) for role in row.allowed_role_ids),
            message_id=None if row.message_id is None else int(row.message_id),
            created_by=row.created_by,
            created_at=row.created_at,
            updated_at=row.updated_at,
            version=row.version,
            deleted=row.deleted_at is not None,
            problem=problem,
            pending=None if row.pending is None else Pending(row.pending),
            due_at=row.due_at,
            attempts=row.attempts,
            posts=row.posts,
            leased_until=row.lease_until,
            results_version=row.results_version,
        )
