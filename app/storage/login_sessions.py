"""Login sessions: who is signed in through Discord, with their OAuth2 tokens.

The browser's cookie holds a random session id; the database holds only its SHA-256, so a
leaked database (or backup) can't be replayed as anyone's cookie.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import delete, select, update
from sqlalchemy.engine import CursorResult, Result

from app.storage.database import Database
from app.storage.models import LoginSession


def hash_session_id(raw_id: str) -> str:
    # The id is 256 random bits: a plain SHA-256 can't be reversed or guessed.
    return hashlib.sha256(raw_id.encode()).hexdigest()


@dataclass(frozen=True)
class LoginSessionRecord:
    id_hash: str
    user_id: str
    username: str
    # Bearer tokens for the user's Discord account: kept out of repr so logs never hold them.
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    token_expires_at: datetime
    scopes: str
    created_at: datetime
    expires_at: datetime
    guilds: list[dict[str, Any]] | None = field(repr=False)
    guilds_fetched_at: datetime | None

    @property
    def expired(self) -> bool:
        return self.expires_at <= datetime.now(UTC)


class LoginSessionStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        user_id: str,
        username: str,
        access_token: str,
        refresh_token: str | None,
        token_expires_at: datetime,
        scopes: str,
        lifetime_seconds: float,
        guilds: list[dict[str, Any]] | None = None,
    ) -> tuple[LoginSessionRecord, str]:
        """A new session and the raw id for the cookie (stored only hashed: hand it over now)."""
        raw_id = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        row = LoginSession(
            id_hash=hash_session_id(raw_id),
            user_id=str(user_id),
            username=username,
            access_token=access_token,
            refresh_token=refresh_token,
            token_expires_at=token_expires_at,
            scopes=scopes,
            created_at=now,
            expires_at=now + timedelta(seconds=lifetime_seconds),
            guilds=guilds,
            guilds_fetched_at=now if guilds is not None else None,
        )
        async with self._db.session() as session, session.begin():
            session.add(row)
        return _record(row), raw_id

    async def get(self, raw_id: str) -> LoginSessionRecord | None:
        """The live session for a cookie's id; None when unknown or expired."""
        async with self._db.session() as session:
            row = await session.scalar(
                select(LoginSession).where(
                    LoginSession.id_hash == hash_session_id(raw_id),
                    LoginSession.expires_at > datetime.now(UTC),
                )
            )
            return None if row is None else _record(row)

    async def update_tokens(
        self, id_hash: str, access_token: str, refresh_token: str | None, token_expires_at: datetime
    ) -> bool:
        """Store refreshed OAuth2 tokens; False when the session is gone."""
        return await self._update(
            id_hash,
            access_token=access_token,
            refresh_token=refresh_token,
            token_expires_at=token_expires_at,
        )

    async def update_guilds(self, id_hash: str, guilds: list[dict[str, Any]], fetched_at: datetime) -> bool:
        """Remember the user's guilds as Discord last listed them; False when the session is gone."""
        return await self._update(id_hash, guilds=guilds, guilds_fetched_at=fetched_at)

    async def delete(self, raw_id: str) -> bool:
        """Log out: True when there was such a session."""
        async with self._db.session() as session, session.begin():
            result = await session.execute(
                delete(LoginSession).where(LoginSession.id_hash == hash_session_id(raw_id))
            )
            return _rowcount(result) > 0

    async def delete_expired(self) -> int:
        """Remove sessions past their expiry; returns how many."""
        async with self._db.session() as session, session.begin():
            result = await session.execute(
                delete(LoginSession).where(LoginSession.expires_at <= datetime.now(UTC))
            )
            return _rowcount(result)

    async def _update(self, id_hash: str, **values: Any) -> bool:
        async with self._db.session() as session, session.begin():
            result = await session.execute(
                update(LoginSession).where(LoginSession.id_hash == id_hash).values(**values)
            )
            return _rowcount(result) > 0


def _rowcount(result: Result[Any]) -> int:
    # UPDATE and DELETE give a CursorResult (with rowcount); execute() is typed as plain Result.
    return cast("CursorResult[Any]", result).rowcount


def _record(row: LoginSession) -> LoginSessionRecord:
    return LoginSessionRecord(
        id_hash=row.id_hash,
        user_id=row.user_id,
        username=row.username,
        access_token=row.access_token,
        refresh_token=row.refresh_token,
        token_expires_at=row.token_expires_at,
        scopes=row.scopes,
        created_at=row.created_at,
        expires_at=row.expires_at,
        guilds=row.guilds,
        guilds_fetched_at=row.guilds_fetched_at,
    )
