"""API keys: tokens for scripts and bots that call the API on behalf of some guilds.

A token is ``polly_<key_id>_<secret>``. The key id is public (it names the key in logs, in
``polly keys list`` and in Redis); the secret is shown once, at creation, and only its
SHA-256 is stored.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select, update

from app.discord.snowflake import MAX_SNOWFLAKE, parse_snowflake
from app.storage.database import Database
from app.storage.models import ApiKey

SCOPES: dict[str, str] = {
    "roles:read": "read guilds' roles and which of them can be pinged (the roles API)",
    "polls:read": "read polls and their results",
    "polls:write": "create, change, open, close and delete polls",
}

TOKEN_PREFIX = "polly_"
KEY_ID_LENGTH = 12
MAX_NAME_LENGTH = 100
_KEY_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
# token_urlsafe's alphabet, which includes "_": the key id has a fixed length, so the
# first "_" after it ends the id and any later ones belong to the secret. The length range
# leaves room to change the secret's size later without breaking issued tokens.
_TOKEN = re.compile(rf"polly_([a-z0-9]{{{KEY_ID_LENGTH}}})_([A-Za-z0-9_-]{{16,128}})")
_JSON_VERSION = 1


class KeyInputError(ValueError):
    """A key was asked for with guilds, scopes or a name that can't be used; the message says why."""


class KeyNotFound(LookupError):
    """No API key has the id asked for."""


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    name: str | None
    guild_ids: frozenset[int]
    scopes: frozenset[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    # Not secret, but nobody reading a log needs it.
    secret_hash: str = field(repr=False)

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def to_json(self) -> bytes:
        """Compact JSON for the Redis cache; guild ids as strings, like everywhere else in JSON."""
        return orjson.dumps(
            {
                "v": _JSON_VERSION,
                "id": self.id,
                "name": self.name,
                "secret_hash": self.secret_hash,
                "guild_ids": [str(guild) for guild in sorted(self.guild_ids)],
                "scopes": sorted(self.scopes),
                "created_at": _iso(self.created_at),
                "last_used_at": _iso(self.last_used_at),
                "revoked_at": _iso(self.revoked_at),
            }
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> ApiKeyRecord:
        """The record :meth:`to_json` wrote; ValueError for anything else (treat it as a cache miss)."""
        try:
            raw: dict[str, Any] = orjson.loads(data)
            if raw.get("v") != _JSON_VERSION:
                raise ValueError(f"cached API key record has version {raw.get('v')!r}, not {_JSON_VERSION}")
            return cls(
                id=str(raw["id"]),
                name=raw["name"],
                guild_ids=frozenset(int(guild) for guild in raw["guild_ids"]),
                scopes=frozenset(str(scope) for scope in raw["scopes"]),
                created_at=datetime.fromisoformat(raw["created_at"]),
                last_used_at=_from_iso(raw["last_used_at"]),
                revoked_at=_from_iso(raw["revoked_at"]),
                secret_hash=str(raw["secret_hash"]),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"cached API key record is malformed: {error!r}") from error


def hash_secret(secret: str) -> str:
    # A single SHA-256 suffices: the secret is 256 random bits, so there is no dictionary to
    # try and brute force is hopeless; slow password hashes exist for low-entropy passwords
    # and would only cost CPU on every request.
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` from ``polly_<key_id>_<secret>``; None for anything else."""
    if not isinstance(token, str):
        return None
    match = _TOKEN.fullmatch(token)
    return None if match is None else (match.group(1), match.group(2))


def secret_matches(record: ApiKeyRecord, secret: str) -> bool:
    # Constant-time comparison, so response timing reveals nothing about the stored hash.
    return hmac.compare_digest(hash_secret(secret), record.secret_hash)


def new_key_id() -> str:
    # 36**12 ≈ 4.7e18 ids: a collision among any realistic number of keys is out of reach,
    # and the primary key would refuse one anyway.
    return "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(KEY_ID_LENGTH))


class ApiKeyStore:
    """API keys in the database. Reads and writes go straight there; caching is the caller's."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, guild_ids: Iterable[int | str], scopes: Iterable[str], name: str | None = None
    ) -> tuple[ApiKeyRecord, str]:
        """A new key and its token; the token is never available again, so hand it over now."""
        guilds, wanted, label = check_key_input(guild_ids, scopes, name)
        key_id = new_key_id()
        secret = secrets.token_urlsafe(32)
        row = ApiKey(
            id=key_id,
            name=label,
            secret_hash=hash_secret(secret),
            guild_ids=[str(guild) for guild in sorted(guilds)],
            scopes=sorted(wanted),
            created_at=_now(),
            last_used_at=None,
            revoked_at=None,
        )
        async with self._db.session() as session, session.begin():
            session.add(row)
        return _record(row), f"{TOKEN_PREFIX}{key_id}_{secret}"

    async def list(self) -> builtins.list[ApiKeyRecord]:
        """Every key, revoked ones included, newest first."""
        async with self._db.session() as session:
            rows = await session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id))
            return [_record(row) for row in rows]

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        async with self._db.session() as session:
            row = await session.get(ApiKey, key_id)
            return None if row is None else _record(row)

    async def revoke(self, key_id: str) -> ApiKeyRecord:
        """Mark the key revoked (keeping the first time if it already was); KeyNotFound if unknown."""
        async with self._db.session() as session, session.begin():
            # The write comes first so that on SQLite the transaction takes the write lock at
            # once (waiting its turn) instead of failing to upgrade a read lock.
            await session.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
            row = await session.get(ApiKey, key_id)
            if row is None:
                raise KeyNotFound(f"No API key has the id {key_id!r}; `polly keys list` shows the keys.")
            return _record(row)

    async def touch(self, key_id: str) -> None:
        """Record that the key was just used."""
        async with self._db.session() as session, session.begin():
            await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=_now()))


def check_key_input(
    guild_ids: Iterable[int | str], scopes: Iterable[str], name: str | None = None
) -> tuple[frozenset[int], frozenset[str], str | None]:
    """The guilds, scopes and name a new key would get; KeyInputError saying what is wrong."""
    return _valid_guilds(guild_ids), _valid_scopes(scopes), _valid_name(name)


def _valid_guilds(guild_ids: Iterable[int | str]) -> frozenset[int]:
    # One id on its own is a common slip; iterating a string would give its digits.
    values: Iterable[object] = [guild_ids] if isinstance(guild_ids, str | int) else guild_ids
    guilds = set()
    for value in values:
        guild = _snowflake(value)
        if guild is None:
            raise KeyInputError(
                f"{value!r} is not a Discord server id: ids are whole numbers from 1 to {MAX_SNOWFLAKE}."
            )
        guilds.add(guild)
    if not guilds:
        raise KeyInputError("An API key needs at least one Discord server (guild) id it may be used for.")
    return frozenset(guilds)


def _snowflake(value: object) -> int | None:
    if isinstance(value, str):
        return parse_snowflake(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 1 <= value <= MAX_SNOWFLAKE else None


def _valid_scopes(scopes: Iterable[str]) -> frozenset[str]:
    wanted = frozenset([scopes] if isinstance(scopes, str) else scopes)
    known = ", ".join(SCOPES)
    unknown = sorted(str(scope) for scope in wanted if scope not in SCOPES)
    if unknown:
        listed = ", ".join(map(repr, unknown))
        noun = "scope" if len(unknown) == 1 else "scopes"
        raise KeyInputError(f"Unknown {noun} {listed}; the known scopes are {known}.")
    if not wanted:
        raise KeyInputError(f"An API key needs at least one scope; the known scopes are {known}.")
    return wanted


def _valid_name(name: str | None) -> str | None:
    if name is None or not name.strip():
        return None
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise KeyInputError(
            f"A key's name must be one line of at most {MAX_NAME_LENGTH} printable characters."
        )
    return name


def _record(row: ApiKey) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row.id,
        name=row.name,
        guild_ids=frozenset(int(guild) for guild in row.guild_ids),
        scopes=frozenset(row.scopes),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        secret_hash=row.secret_hash,
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _from_iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
