"""``polly db upgrade``: the migrations as a deployment step of their own, run as a real process."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from app.storage.database import MIGRATIONS
from tests.conftest import REPO
from tests.processes import refused_port

TABLES = {
    "alembic_version",
    "api_keys",
    "login_sessions",
    "polls",
    "poll_options",
    "ballots",
    "ballot_choices",
}


def newest_revision() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def polly_db(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("POLLY_")}
    return subprocess.run(
        [sys.executable, "-m", "app", "db", *args],
        capture_output=True, text=True, cwd=REPO, env={**clean, **env}, timeout=60,
    )  # fmt: skip


def test_upgrade_creates_the_tables_of_a_fresh_sqlite_database_and_runs_again(tmp_path: Path) -> None:
    data = tmp_path / "data"  # not there yet: the command makes it
    for _ in range(2):
        result = polly_db("upgrade", env={"POLLY_DATA_DIR": str(data)})
        assert result.returncode == 0, result.stderr
        assert (
            result.stdout
            == f"Database at sqlite+aiosqlite:///{data / 'polly.db'} is at the newest revision.\n"
        )
        assert "Traceback" not in result.stderr
    with contextlib.closing(sqlite3.connect(data / "polly.db")) as database:
        tables = {name for (name,) in database.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        (revision,) = database.execute("SELECT version_num FROM alembic_version").fetchone()
    assert tables >= TABLES
    assert revision == newest_revision()


def test_an_unreachable_database_is_a_sentence_and_exit_status_2() -> None:
    with refused_port() as port:
        url = f"postgresql+asyncpg://polly:not-for-your-eyes@127.0.0.1:{port}/polly"
        result = polly_db("upgrade", env={"POLLY_DATABASE_URL": url})
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(
        f"polly db upgrade: The database at postgresql+asyncpg://polly:***@127.0.0.1:{port}/polly"
    )
    assert "POLLY_DATABASE_URL" in result.stderr and result.stderr.count("\n") == 1
    assert "not-for-your-eyes" not in result.stderr and "Traceback" not in result.stderr


def test_a_database_url_polly_cannot_use_is_named() -> None:
    result = polly_db("upgrade", env={"POLLY_DATABASE_URL": "mysql://polly@db/polly"})
    assert result.returncode == 2
    assert "neither SQLite nor PostgreSQL" in result.stderr and "Traceback" not in result.stderr
