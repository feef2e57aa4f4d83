"""The tables, as SQLAlchemy 2 declarative models; the migrations in ``migrations/`` create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Named constraints, so a later migration can drop or alter them by name on every backend
# (SQLite and PostgreSQL would otherwise make up different names).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL keeps the zone (timestamptz); SQLite has no datetime type and SQLAlchemy
    stores text without a zone, reading back naive datetimes. Storing every value in UTC
    and attaching UTC on the way out makes both return the same aware values, and keeps
    SQLite's text comparisons (``expires_at > now``) in time order.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"{value!r} has no time zone; pass an aware datetime (e.g. in UTC).")
        value = value.astimezone(UTC)
        # SQLite's text format has no zone; PostgreSQL needs one to avoid reading it as local.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(64))
    # Decimal strings in a JSON list rather than a BIGINT column or a child table:
    # snowflakes go up to 2**64-1, past a signed BIGINT, and past the 2**53 that JSON
    # numbers keep exactly in JavaScript. A key's guilds are read whole with the key (and
    # cached in Redis as one record), never searched by guild, so a child table would buy
    # a join and nothing else.
    guild_ids: Mapped[list[str]] = mapped_column(JSON)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class LoginSession(Base):
    __tablename__ = "login_sessions"
    __table_args__ = (
        # delete_expired() sweeps by expiry; "log out everywhere" finds a user's sessions.
        Index("ix_login_sessions_expires_at", "expires_at"),
        Index("ix_login_sessions_user_id", "user_id"),
    )

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(20))
    username: Mapped[str] = mapped_column(String(100))
    access_token: Mapped[str] = mapped_column(Text)
    refresh_token: Mapped[str | None] = mapped_column(Text)
    token_expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    scopes: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    guilds: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    guilds_fetched_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


# SQLite gives autoincrement ids only to an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT.
PollId = BigInteger().with_variant(Integer(), "sqlite")


class Poll(Base):
    """A poll. Its status and times are the truth the scheduler and the API act on; ``version``
    grows with every change, and every write is a conditional update on what it read."""

    __tablename__ = "polls"
    __table_args__ = (
        # polls(guildId, ...): newest first within a guild.
        Index("ix_polls_guild_id", "guild_id", "id"),
        # The scheduler's question: what is due now?
        Index("ix_polls_due_at", "due_at"),
    )

    id: Mapped[int] = mapped_column(PollId, primary_key=True, autoincrement=True)
    guild_id: Mapped[str] = mapped_column(String(20))
    channel_id: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    question: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    opens_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closes_at: Mapped[datetime] = mapped_column(UtcDateTime)
    timezone: Mapped[str] = mapped_column(String(64))
    anonymous: Mapped[bool] = mapped_column(Boolean)
    max_choices: Mapped[int] = mapped_column(Integer)
    results_visibility: Mapped[str] = mapped_column(String(16))
    ping_role_id: Mapped[str | None] = mapped_column(String(20))
    ping_on_open: Mapped[bool] = mapped_column(Boolean)
    ping_on_close: Mapped[bool] = mapped_column(Boolean)
    allowed_role_ids: Mapped[list[str]] = mapped_column(JSON)
    message_id: Mapped[str | None] = mapped_column(String(20))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    version: Mapped[int] = mapped_column(Integer)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # What is wrong on Discord's side, if anything (shown as Poll.problem).
    problem_code: Mapped[str | None] = mapped_column(String(40))
    problem_message: Mapped[str | None] = mapped_column(Text)
    problem_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The scheduler's bookkeeping: the Discord work still owed (POST, FINISH, EDIT, DELETE),
    # when it is next due, and which process holds it until when.
    pending: Mapped[str | None] = mapped_column(String(16))
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Counts the opening posts, so each has its own Discord nonce (a reopened poll's message
    # is edited, not posted again; the count guards retries of the same post).
    posts: Mapped[int] = mapped_column(Integer, default=0)
    # The results, kept by every vote in the same transaction as the ballot (under the poll's
    # row lock), so no read ever counts the ballots: votes per option position, and voters.
    vote_counts: Mapped[list[int]] = mapped_column(JSON, default=list)
    voters: Mapped[int] = mapped_column(Integer, default=0)
    # Grows with every vote: the results document's version (Poll.version is the poll's own).
    results_version: Mapped[int] = mapped_column(Integer, default=0)

    options: Mapped[list[PollOption]] = relationship(
        back_populates="poll", order_by="PollOption.position", cascade="all, delete-orphan"
    )


class PollOption(Base):
    __tablename__ = "poll_options"

    poll_id: Mapped[int] = mapped_column(ForeignKey("polls.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(String(80))
    emoji: Mapped[str | None] = mapped_column(String(100))

    poll: Mapped[Poll] = relationship(back_populates="options")


class Ballot(Base):
    """One voter's ballot in one poll: the unique constraint makes it one per user per poll."""

    __tablename__ = "ballots"
    __table_args__ = (UniqueConstraint("poll_id", "user_id", name="uq_ballots_poll_id_user_id"),)

    id: Mapped[int] = mapped_column(PollId, primary_key=True, autoincrement=True)
    poll_id: Mapped[int] = mapped_column(ForeignKey("polls.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class BallotChoice(Base):
    """An option a ballot chose; several for a multiple-choice poll (up to its max_choices)."""

    __tablename__ = "ballot_choices"

    ballot_id: Mapped[int] = mapped_column(ForeignKey("ballots.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Denormalized from the ballot, so counting a poll's results reads one indexed table.
    poll_id: Mapped[int] = mapped_column(ForeignKey("polls.id", ondelete="CASCADE"), index=True)
