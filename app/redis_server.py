"""A private redis-server that keeps nothing on disk: the demo's, the tests' and the benchmarks'.

Every setting that decides what survives a restart is given on the command line rather than
left to redis-server's defaults (which save snapshots, so a restarted server would load the
data of the one before): no RDB save points, no append-only file, a directory of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

from app.ports import free_port


class RedisServerError(Exception):
    """redis-server is missing or did not start; the message says which."""


class RedisServer:
    """One redis-server process on 127.0.0.1, started and stopped as often as a caller needs
    (a stop is an outage: everything it held is gone)."""

    def __init__(self, directory: Path, *, port: int | None = None, executable: str | None = None) -> None:
        found = executable or shutil.which("redis-server")
        if found is None:
            raise RedisServerError("redis-server is not installed: apt-get install redis-server.")
        self.executable = found
        self.directory = directory
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            self.executable,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.directory / f"redis-{self.port}.log"),
            "--loglevel", "warning",
        ]  # fmt: skip

    def _launch(self) -> None:
        if self.process is not None and self.process.poll() is None:
            raise RedisServerError(f"redis-server on port {self.port} is already running.")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def _answers(self) -> bool:
        """The server accepts commands (not still loading, not gone)."""
        if self.process is not None and self.process.poll() is not None:
            error = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
            reason = error.strip() or "no reason given"
            raise RedisServerError(f"redis-server on port {self.port} exited: {reason}.")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self, within: float = 10.0) -> None:
        """Start and wait until it answers (blocking: for synchronous callers)."""
        self._launch()
        deadline = time.monotonic() + within
        while not self._answers():
            if time.monotonic() > deadline:
                self.stop()
                raise RedisServerError(f"redis-server on port {self.port} did not answer within {within:g}s.")
            time.sleep(0.02)

    async def start_async(self, within: float = 10.0) -> None:
        """Start and wait until it answers, leaving the event loop free meanwhile."""
        await asyncio.to_thread(self.start, within)

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    async def stop_async(self) -> None:
        await asyncio.to_thread(self.stop)
