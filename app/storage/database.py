"""The database connection: one async engine, migrations to head, sessions, and clear errors.

SQLite (the default, one file) and PostgreSQL (through asyncpg) are supported; the URL
says which. Callers run :meth:`Database.upgrade` once at start; it is safe to run from
several processes at once.
"""

from __future__ import annotations

import asyncio
import importlib.util
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    IntegrityError,
    NotSupportedError,
    ProgrammingError,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from app.telemetry.metrics import DATABASE_ERRORS

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

# Seconds a connection waits for another's write lock (SQLite) or for the server to answer
# a connect (PostgreSQL) before the database counts as unreachable.
SQLITE_BUSY_TIMEOUT_MS = 10_000
POSTGRES_CONNECT_TIMEOUT = 10

# Any constant shared by every process: pg_advisory_xact_lock() serializes migrations on it.
_MIGRATION_LOCK_ID = 0x706F6C6C79  # "polly"
# An execution option our SQLite "begin" hook reads: migrations take the write lock up front.
_SQLITE_BEGIN = "polly_sqlite_begin"

# Failures of one statement rather than of the database: they reach the caller unchanged.
STATEMENT_ERRORS = (IntegrityError, DataError, ProgrammingError, NotSupportedError)

_EXAMPLES = "sqlite+aiosqlite:///path/to/polly.db or postgresql+asyncpg://user:password@host/dbname"
_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}


# Alembic keeps a migration's context in module globals, so two migrations at once in one
# process (polly demo's API and bot, tests) would trample each other: one at a time per loop.
_MIGRATING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _migration_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _MIGRATING.get(loop)
    if lock is None:
        lock = _MIGRATING[loop] = asyncio.Lock()
    return lock


class DatabaseError(Exception):
    """The database URL is unusable; the message says why and what to do."""


class DatabaseUnavailable(DatabaseError):
    """The database could not be reached or used just now."""


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        # Not echoed: an unparsable URL may still hold a password.
        raise DatabaseError(f"The database URL could not be read; write it like {_EXAMPLES}.") from None
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql") and parsed.get_driver_name() != "asyncpg":
        suggestion = parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=True)
        raise DatabaseError(
            f"The database URL {parsed.render_as_string(hide_password=True)} names a driver Polly cannot"
            f" use asynchronously; use postgresql+asyncpg:// instead, e.g. {suggestion}."
        )
    if backend == "sqlite" and parsed.get_driver_name() != "aiosqlite":
        suggestion = parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=True)
        raise DatabaseError(
            f"The database URL {parsed.render_as_string(hide_password=True)} names a driver Polly cannot"
            f" use asynchronously; use sqlite+aiosqlite:// instead, e.g. {suggestion}."
        )
    if backend not in _DRIVERS:
        raise DatabaseError(
            f"The database URL {parsed.render_as_string(hide_password=True)} is neither SQLite nor"
            f" PostgreSQL, the databases Polly supports; write it like {_EXAMPLES}."
        )
    driver = _DRIVERS[backend]
    if importlib.util.find_spec(driver) is None:
        raise DatabaseError(
            f"The database URL {parsed.render_as_string(hide_password=True)} needs the {driver} package,"
            f" which is not installed; install it with: pip install {driver}."
        )
    return parsed


def _reason(error: BaseException) -> str:
    """The driver's own words for what went wrong, on one line."""
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    if isinstance(cause, OSError) and cause.strerror:
        words = cause.strerror
    else:
        words = str(cause).strip() or type(cause).__name__
    return words.splitlines()[0].rstrip(".")


class Database:
    """One database: ``await upgrade()`` at start, ``async with db.session()`` to use it."""

    def __init__(self, url: str) -> None:
        self._url = _parse(url)
        self.backend = self._url.get_backend_name()
        self.url = self._url.render_as_string(hide_password=True)
        options: dict[str, Any] = {}
        if self.backend == "postgresql":
            # pre_ping: a long-running API survives a PostgreSQL restart without one failed request.
            options = {"connect_args": {"timeout": POSTGRES_CONNECT_TIMEOUT}, "pool_pre_ping": True}
        self.engine = create_async_engine(self._url, **options)
        if self.backend == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    def unavailable(self, error: BaseException) -> DatabaseUnavailable:
        """A sentence for a failure to reach or use this database (the URL without its password)."""
        DATABASE_ERRORS.inc()
        return DatabaseUnavailable(
            f"The database at {self.url} cannot be used: {_reason(error)}. Check that it is running"
            " and that the URL (POLLY_DATABASE_URL) is right."
        )

    async def upgrade(self) -> None:
        """Create or migrate the tables to the newest version; a no-op when already there."""
        self._create_sqlite_directory()
        try:
            async with _migration_lock(), self.engine.connect() as connection:
                # SQLite: BEGIN IMMEDIATE takes the write lock before Alembic reads its version,
                # so a second process waits (busy timeout) and then finds the work done.
                await connection.execution_options(**{_SQLITE_BEGIN: "BEGIN IMMEDIATE"})
                async with connection.begin():
                    if self.backend == "postgresql":
                        # Held until commit; PostgreSQL's DDL is transactional, so the second
                        # process sees the finished schema once it gets the lock.
                        await connection.execute(
                            text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
                        )
                    await connection.run_sync(_upgrade_to_head)
        except (OSError, DBAPIError) as error:
            raise self.unavailable(error) from error

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session (objects stay usable after commit); connection failures become DatabaseUnavailable."""
        try:
            async with self._sessions() as session:
                yield session
        except OSError as error:
            raise self.unavailable(error) from error
        except DBAPIError as error:
            # Errors of a statement (a conflict the caller handles, or a bug) go up as they are;
            # any other means the database itself cannot be used now: lost, dropped, refusing.
            if isinstance(error, STATEMENT_ERRORS) and not error.connection_invalidated:
                raise
            raise self.unavailable(error) from error

    async def close(self) -> None:
        await self.engine.dispose()

    def _create_sqlite_directory(self) -> None:
        database = self._url.database
        if self.backend != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
            return
        directory = Path(database).expanduser().parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DatabaseUnavailable(
                f"The database at {self.url} cannot be created: the directory {directory} cannot be made"
                f" ({error.strerror or error}); set POLLY_DATA_DIR or POLLY_DATABASE_URL to a writable place."
            ) from error


def _upgrade_to_head(connection: Connection) -> None:
    # Imported here: only migrating needs Alembic, and importing it logs (at INFO) and takes time.
    from alembic import command
    from alembic.config import Config

    config = Config()
    # configparser would read a "%" in the path as interpolation.
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _sqlite_connect(dbapi_connection: Any, connection_record: ConnectionPoolEntry) -> None:
    # Python's sqlite3 would BEGIN lazily and not at all before DDL, leaving migrations half
    # applied on failure; with isolation_level None, _sqlite_begin below issues every BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first: switching to WAL may itself wait for another connection.
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        # WAL: readers don't block the writer nor it them (the API reads while the CLI writes).
        cursor.execute("PRAGMA journal_mode = WAL")
    finally:
        cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    connection.exec_driver_sql(connection.get_execution_options().get(_SQLITE_BEGIN, "BEGIN"))
