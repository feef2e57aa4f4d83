"""The tables, as SQLAlchemy 2 declarative models; the migrations in ``migrations/`` create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, MetaData, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
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
