"""The database layer against real SQLite and a real (throwaway) PostgreSQL server."""

from __future__ import annotations

import asyncio
import re
import socket
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import text

from app.storage import api_keys
from app.storage.api_keys import (
    SCOPES,
    ApiKeyRecord,
    ApiKeyStore,
    KeyInputError,
    KeyNotFound,
    parse_token,
    secret_matches,
)
from app.storage.database import Database, DatabaseError, DatabaseUnavailable
from app.storage.login_sessions import LoginSessionStore, hash_session_id
from tests.postgres import PostgresServer

REPO = Path(__file__).resolve().parents[1]

HUGE = 2**64 - 1  # 18446744073709551615, the largest snowflake
GUILD = 1191168914252365824


# -- fixtures over both backends ----------------------------------------------------------------


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A URL of an empty database, never migrated."""
    if request.param == "sqlite":
        # A directory that does not exist yet: upgrade() must make it.
        yield f"sqlite+aiosqlite:///{tmp_path / 'data' / 'polly.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = await server.create_database()
    try:
        yield server.url(name)
    finally:
        await server.drop_database(name)


@pytest_asyncio.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    try:
        await database.upgrade()
        yield database
    finally:
        await database.close()


@pytest.fixture
def keys(db: Database) -> ApiKeyStore:
    return ApiKeyStore(db)


@pytest.fixture
def sessions(db: Database) -> LoginSessionStore:
    return LoginSessionStore(db)


async def version(db: Database) -> str | None:
    async with db.session() as session:
        found: str | None = await session.scalar(text("SELECT version_num FROM alembic_version"))
        return found


# -- the database and its migrations -------------------------------------------------------------


HEAD = "0003"


async def test_migrations_can_run_again(db: Database, database_url: str) -> None:
    assert await version(db) == HEAD
    await db.upgrade()
    again = Database(database_url)
    try:
        await again.upgrade()
        assert await version(again) == HEAD
    finally:
        await again.close()


MIGRATE = (
    "import asyncio, sys; from app.storage.database import Database;"
    " asyncio.run(Database(sys.argv[1]).upgrade())"
)


async def test_processes_starting_at_once_migrate_once(database_url: str) -> None:
    # Processes, not tasks: within one process migrations take turns anyway (Alembic's context
    # is global); across processes the database's own lock must serialize them.
    runs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", MIGRATE, database_url, cwd=REPO, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(4)
    ]
    outcomes = [(await run.communicate())[1] for run in runs]
    assert [run.returncode for run in runs] == [0] * 4, outcomes
    databases = [Database(database_url) for _ in range(4)]
    try:
        for database in databases:
            assert await version(database) == HEAD
        record, _ = await ApiKeyStore(databases[0]).create([GUILD], ["roles:read"])
        assert await ApiKeyStore(databases[3]).get(record.id) == record
    finally:
        for database in databases:
            await database.close()


async def test_sqlite_uses_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'dir' / 'polly.db'}")
    try:
        await db.upgrade()
        assert (tmp_path / "nested" / "dir" / "polly.db").is_file()
        async with db.session() as session:
            assert await session.scalar(text("PRAGMA journal_mode")) == "wal"
            assert await session.scalar(text("PRAGMA foreign_keys")) == 1
            assert await session.scalar(text("PRAGMA busy_timeout")) >= 1000
    finally:
        await db.close()


def test_a_postgresql_url_without_the_async_driver_says_which_to_use() -> None:
    with pytest.raises(DatabaseError) as caught:
        Database("postgresql://polly:hunter2@db.example/polly")
    message = str(caught.value)
    assert "postgresql+asyncpg://" in message
    assert "hunter2" not in message


@pytest.mark.parametrize("url", ["mysql+aiomysql://u:hunter2@h/db", "sqlite:///x.db", "not a url"])
def test_unusable_urls_are_refused_with_a_sentence(url: str) -> None:
    with pytest.raises(DatabaseError, match=r"\.$") as caught:
        Database(url)
    assert "hunter2" not in str(caught.value)


async def test_an_unreachable_database_is_named_without_its_password() -> None:
    # A port held bound but never listening: connections to it are refused, whoever runs beside.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        db = Database(f"postgresql+asyncpg://polly:hunter2@127.0.0.1:{port}/polly")
        try:
            with pytest.raises(DatabaseUnavailable) as caught:
                await db.upgrade()
        finally:
            await db.close()
    message = str(caught.value)
    assert "cannot be used" in message
    assert "polly:***@127.0.0.1" in message
    assert "hunter2" not in message


async def test_a_database_dropped_under_a_running_process_is_unavailable(
    postgres_server: PostgresServer,
) -> None:
    name = await postgres_server.create_database()
    db = Database(postgres_server.url(name))
    try:
        await db.upgrade()
        await postgres_server.drop_database(name)  # ends the pooled connection too
        for _ in range(2):  # the lost connection, then the failed reconnect
            with pytest.raises(DatabaseUnavailable, match=rf"{name}.*(does not exist|terminat)"):
                async with db.session() as session:
                    await session.execute(text("SELECT 1"))
    finally:
        await db.close()


async def test_a_missing_postgresql_database_is_named(postgres_server: PostgresServer) -> None:
    db = Database(postgres_server.url("no_such_database"))
    try:
        with pytest.raises(DatabaseUnavailable, match=r"no_such_database.*does not exist"):
            await db.upgrade()
    finally:
        await db.close()


# -- API keys -------------------------------------------------------------------------------------


async def test_create_then_get_and_list_newest_first(keys: ApiKeyStore) -> None:
    first, first_token = await keys.create([GUILD], ["roles:read"], name="first")
    second, _ = await keys.create([GUILD, 42], ["roles:read", "polls:read"])
    assert re.fullmatch(r"[a-z0-9]{12}", first.id)
    assert first_token.startswith(f"polly_{first.id}_")
    assert first.name == "first"
    assert second.name is None
    assert second.guild_ids == frozenset({GUILD, 42})
    assert second.scopes == frozenset({"roles:read", "polls:read"})
    assert first.created_at.tzinfo is not None
    assert first.created_at.utcoffset() == timedelta(0)
    assert abs(first.created_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert (first.last_used_at, first.revoked_at, first.revoked) == (None, None, False)

    assert await keys.get(first.id) == first
    assert await keys.get("nosuchkey000") is None
    assert [record.id for record in await keys.list()] == [second.id, first.id]


async def test_the_largest_snowflake_round_trips(keys: ApiKeyStore) -> None:
    record, _ = await keys.create([HUGE, str(HUGE - 1), 1], ["roles:read"])
    stored = await keys.get(record.id)
    assert stored is not None
    assert stored.guild_ids == frozenset({HUGE, HUGE - 1, 1})
    assert ApiKeyRecord.from_json(stored.to_json()) == stored


async def test_the_token_opens_the_key_and_nothing_else_does(keys: ApiKeyStore) -> None:
    record, token = await keys.create([GUILD], ["roles:read"])
    parsed = parse_token(token)
    assert parsed is not None
    key_id, secret = parsed
    assert key_id == record.id
    stored = await keys.get(key_id)
    assert stored is not None
    assert secret_matches(stored, secret)
    assert not secret_matches(stored, secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    assert not secret_matches(stored, "")
    assert secret not in stored.secret_hash
    assert secret not in repr(stored)


async def test_a_secret_with_underscores_and_dashes_parses(
    keys: ApiKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # token_urlsafe may produce "_" and "-" anywhere, the first character included.
    awkward = "_-a_b-" + "c" * 37
    monkeypatch.setattr(api_keys.secrets, "token_urlsafe", lambda nbytes: awkward)
    record, token = await keys.create([GUILD], ["roles:read"])
    assert token == f"polly_{record.id}_{awkward}"
    assert parse_token(token) == (record.id, awkward)
    assert secret_matches(record, awkward)


async def test_revoke_keeps_the_first_time_and_refuses_unknown_keys(keys: ApiKeyStore) -> None:
    record, _ = await keys.create([GUILD], ["roles:read"])
    revoked = await keys.revoke(record.id)
    assert revoked.revoked
    assert revoked.revoked_at is not None
    assert revoked.revoked_at >= record.created_at
    again = await keys.revoke(record.id)
    assert again.revoked_at == revoked.revoked_at
    assert await keys.get(record.id) == revoked
    with pytest.raises(KeyNotFound, match="No API key has the id 'nosuchkey000'"):
        await keys.revoke("nosuchkey000")


async def test_touch_records_the_last_use(keys: ApiKeyStore) -> None:
    record, _ = await keys.create([GUILD], ["roles:read"])
    await keys.touch(record.id)
    touched = await keys.get(record.id)
    assert touched is not None
    assert touched.last_used_at is not None
    assert touched.last_used_at >= record.created_at
    await keys.touch("nosuchkey000")  # a key deleted meanwhile is no error


@pytest.mark.parametrize(
    ("guilds", "scopes", "name", "problem"),
    [
        ([], ["roles:read"], None, "at least one Discord server"),
        ([0], ["roles:read"], None, "is not a Discord server id"),
        ([-1], ["roles:read"], None, "is not a Discord server id"),
        ([HUGE + 1], ["roles:read"], None, "from 1 to 18446744073709551615"),
        (["12ab"], ["roles:read"], None, "'12ab' is not a Discord server id"),
        ([True], ["roles:read"], None, "is not a Discord server id"),
        ([GUILD], [], None, "at least one scope; the known scopes are roles:read, polls:read, polls:write"),
        ([GUILD], ["roles:write"], None, "Unknown scope 'roles:write'; the known scopes are roles:read"),
        ([GUILD], ["roles:read"], "x" * 101, "at most 100"),
        ([GUILD], ["roles:read"], "two\nlines", "one line"),
    ],
)
async def test_bad_key_input_is_refused_with_a_sentence(
    keys: ApiKeyStore, guilds: list[int | str], scopes: list[str], name: str | None, problem: str
) -> None:
    with pytest.raises(KeyInputError, match=re.escape(problem)):
        await keys.create(guilds, scopes, name)
    assert await keys.list() == []


def test_every_scope_is_described() -> None:
    assert set(SCOPES) == {"roles:read", "polls:read", "polls:write"}
    assert all(description.strip() for description in SCOPES.values())


# -- tokens and cached records (no database) -----------------------------------------------------

SECRET = "Q" * 43


@pytest.mark.parametrize(
    "token",
    [
        "",
        "polly_",
        "polly_abcdefghijkl",
        "polly_abcdefghijkl_",
        "polly_abcdefghijkl_short",
        f"polly_abcdefghijk_{SECRET}",  # an 11-character id
        f"polly_abcdefghijklm_{SECRET}",  # 13: the 13th character is not the separator
        f"polly_ABCDEFGHIJKL_{SECRET}",
        f"polly_abcdefghijkl-{SECRET}",
        f"polly_abcdefghijkl_{SECRET}=",
        f"polly_abcdefghijkl_{SECRET} ",
        f"polly_abcdefghijkl_{SECRET}\n",
        f"Polly_abcdefghijkl_{SECRET}",
        f"pollyabcdefghijkl_{SECRET}",
        f"pk_abcdefghijkl_{SECRET}",
        f"Bearer polly_abcdefghijkl_{SECRET}",
        f"polly_abcdefghijkl_{'Q' * 129}",
        f"polly_abcdéfghijkl_{SECRET}",
    ],
)
def test_malformed_tokens_parse_to_none(token: str) -> None:
    assert parse_token(token) is None


def test_parse_token_never_raises_on_a_non_string() -> None:
    assert parse_token(None) is None  # type: ignore[arg-type]
    assert parse_token(b"polly_abcdefghijkl_" + SECRET.encode()) is None  # type: ignore[arg-type]


def test_underscores_after_the_id_belong_to_the_secret() -> None:
    assert parse_token("polly_abcdefghijkl___x_y-z_" + "Q" * 20) == ("abcdefghijkl", "__x_y-z_" + "Q" * 20)


def test_a_record_survives_the_cache_format() -> None:
    now = datetime.now(UTC)
    record = ApiKeyRecord(
        id="abcdefghijkl",
        name="ci",
        guild_ids=frozenset({HUGE, 1}),
        scopes=frozenset({"roles:read"}),
        created_at=now,
        last_used_at=None,
        revoked_at=now + timedelta(seconds=1),
        secret_hash="0" * 64,
    )
    raw = record.to_json()
    assert isinstance(raw, bytes)
    assert b"18446744073709551615" in raw
    assert ApiKeyRecord.from_json(raw) == record
    assert ApiKeyRecord.from_json(raw.decode()) == record
    assert record.revoked
    for broken in (b"", b"{", b"[]", b'{"v": 1}', b'{"v": 99}', b"null"):
        with pytest.raises(ValueError, match=r"\S"):
            ApiKeyRecord.from_json(broken)


# -- login sessions -------------------------------------------------------------------------------


async def new_session(
    sessions: LoginSessionStore, lifetime: float = 3600, guilds: list[dict[str, object]] | None = None
) -> tuple[str, datetime]:
    expires = datetime.now(UTC) + timedelta(days=7)
    record, raw_id = await sessions.create(
        user_id=str(HUGE),
        username="ada",
        access_token="access-1",
        refresh_token="refresh-1",
        token_expires_at=expires,
        scopes="identify guilds",
        lifetime_seconds=lifetime,
        guilds=guilds,
    )
    assert record.id_hash == hash_session_id(raw_id)
    return raw_id, expires


async def test_a_session_is_found_by_its_raw_id_only(sessions: LoginSessionStore) -> None:
    raw_id, token_expires = await new_session(sessions)
    found = await sessions.get(raw_id)
    assert found is not None
    assert found.id_hash == hash_session_id(raw_id) != raw_id
    assert (found.user_id, found.username, found.scopes) == (str(HUGE), "ada", "identify guilds")
    assert (found.access_token, found.refresh_token) == ("access-1", "refresh-1")
    assert found.token_expires_at == token_expires
    assert found.expires_at - found.created_at == timedelta(seconds=3600)
    assert found.created_at.utcoffset() == timedelta(0)
    assert (found.guilds, found.guilds_fetched_at) == (None, None)
    assert not found.expired
    assert "access-1" not in repr(found)
    assert "refresh-1" not in repr(found)
    assert await sessions.get(found.id_hash) is None
    assert await sessions.get("not-a-session") is None


@pytest.mark.parametrize("lifetime", [0, -60])
async def test_an_expired_session_is_not_found(sessions: LoginSessionStore, lifetime: int) -> None:
    raw_id, _ = await new_session(sessions, lifetime=lifetime)
    assert await sessions.get(raw_id) is None


async def test_delete_and_delete_expired(sessions: LoginSessionStore) -> None:
    live, _ = await new_session(sessions)
    gone, _ = await new_session(sessions)
    await new_session(sessions, lifetime=0)
    await new_session(sessions, lifetime=-3600)
    assert await sessions.delete(gone)
    assert not await sessions.delete(gone)
    assert await sessions.get(gone) is None
    assert await sessions.delete_expired() == 2
    assert await sessions.delete_expired() == 0
    assert await sessions.get(live) is not None


async def test_update_guilds_and_tokens(sessions: LoginSessionStore) -> None:
    raw_id, _ = await new_session(sessions, guilds=[{"id": "1", "name": "old"}])
    created = await sessions.get(raw_id)
    assert created is not None
    assert created.guilds == [{"id": "1", "name": "old"}]
    assert created.guilds_fetched_at == created.created_at

    fetched = datetime.now(UTC) + timedelta(seconds=5)
    guilds = [{"id": str(HUGE), "name": "Polly Playground", "permissions": "2147483647", "owner": True}]
    assert await sessions.update_guilds(created.id_hash, guilds, fetched)
    new_expiry = datetime.now(UTC) + timedelta(days=14)
    assert await sessions.update_tokens(created.id_hash, "access-2", None, new_expiry)

    updated = await sessions.get(raw_id)
    assert updated is not None
    assert updated.guilds == guilds
    assert updated.guilds_fetched_at == fetched
    assert (updated.access_token, updated.refresh_token, updated.token_expires_at) == (
        "access-2",
        None,
        new_expiry,
    )
    assert not await sessions.update_guilds("0" * 64, guilds, fetched)
    assert not await sessions.update_tokens("0" * 64, "a", None, new_expiry)
