"""A throwaway PostgreSQL server for the run (a pytest plugin: conftest loads it).

Without PostgreSQL installed, the tests that need it skip, naming what is missing; with
POLLY_TEST_POSTGRES=require (which ./scripts/test sets, having installed it) they fail
instead, so CI never passes with half the database tests unrun.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

REQUIRED = os.environ.get("POLLY_TEST_POSTGRES") == "require"
ATTEMPTS = 5  # a port taken between choosing and binding costs a retry, not a failed run


def postgres_bin_dir() -> Path | None:
    candidates = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versions, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)[::-1]
    return next((c for c in candidates if (c / "initdb").is_file() and (c / "pg_ctl").is_file()), None)


@dataclass
class PostgresServer:
    port: int

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://polly@127.0.0.1:{self.port}/{database}"

    async def admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(host="127.0.0.1", port=self.port, user="polly", database="postgres")

    async def create_database(self) -> str:
        name = f"polly_{uuid.uuid4().hex[:12]}"
        connection = await self.admin()
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        return name

    async def drop_database(self, name: str) -> None:
        """Drop ``name``, ending its open connections: what a lost database looks like to a client."""
        connection = await self.admin()
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the run, in a temporary directory, on a free port."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        missing = "PostgreSQL is not installed (no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin)"
        if REQUIRED:
            pytest.fail(f"{missing}, and POLLY_TEST_POSTGRES=require.")
        pytest.skip(f"{missing}; ./scripts/test installs it.")
    # Not under pytest's tmp_path: that is private to root, and the server may run as postgres.
    root = Path(tempfile.mkdtemp(prefix="polly-pg-"))
    data, sockets, log = root / "data", root / "sockets", root / "server.log"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root.
        account = pwd.getpwnam("postgres")
        for path in (root, sockets):
            os.chown(path, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*as_user, *command], capture_output=True, text=True, timeout=60)

    def failed(command: tuple[str, ...], result: subprocess.CompletedProcess[str]) -> str:
        details = log.read_text() if log.exists() else ""
        return f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}{details}"

    init = (str(bin_dir / "initdb"), "-D", str(data), "-U", "polly", "-A", "trust", "-E", "UTF8")
    result = run(*init)
    if result.returncode != 0:
        pytest.fail(failed(init, result))
    for attempt in range(ATTEMPTS):
        port = unused_port()
        options = (
            f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
        )
        start = (str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60")
        result = run(*start, "start")
        if result.returncode == 0:
            break
        taken = log.exists() and "could not bind" in log.read_text()
        if not taken or attempt == ATTEMPTS - 1:
            pytest.fail(failed(start, result))
    try:
        yield PostgresServer(port)
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
