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

# A lost race for a port costs a retry; this many lost in a row says something else is wrong.
PORT_ATTEMPTS = 5


def unused_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, and that another process may take
    before redis-server binds it: redis-server cannot be given port 0 (that turns TCP off)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServerError(Exception):
    """redis-server is missing or did not start; the message says which."""


class PortTaken(RedisServerError):
    """redis-server could not bind its port: another process holds it."""


class RedisServer:
    """One redis-server process on 127.0.0.1, started and stopped as often as a caller needs
    (a stop is an outage: everything it held is gone).

    Without a ``port``, it picks one and, should another process take that port first, picks
    again (a few times) until the first start succeeds; ``port`` and ``url`` are settled once
    ``start`` returns, and later starts keep them, since clients were given the URL."""

    def __init__(self, directory: Path, *, port: int | None = None, executable: str | None = None) -> None:
        found = executable or shutil.which("redis-server")
        if found is None:
            raise RedisServerError("redis-server is not installed: apt-get install redis-server.")
        self.executable = found
        self.directory = directory
        self.port = port or unused_port()
        self.port_may_move = port is None
        self.process: subprocess.Popen[bytes] | None = None
        self._log_start = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.directory / f"redis-{self.port}.log"

    def command(self) -> list[str]:
        return [
            self.executable,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.log_path),
            "--loglevel", "warning",
        ]  # fmt: skip

    def _launch(self) -> None:
        if self.process is not None and self.process.poll() is None:
            raise RedisServerError(f"redis-server on port {self.port} is already running.")
        self.directory.mkdir(parents=True, exist_ok=True)
        # redis-server appends to its log: only what this start writes tells why this start failed.
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.process = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def _log_since_launch(self) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_start)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def _answers(self) -> bool:
        """This start's process accepts commands (not still loading, not gone). Another
        redis-server already on the port would answer too: its process id tells them apart."""
        process = self.process
        assert process is not None
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            log = self._log_since_launch()
            if "Address already in use" in log:
                raise PortTaken(f"redis-server cannot listen on port {self.port}: another process holds it.")
            said = [line.strip() for line in f"{error}\n{log}".splitlines() if line.strip()]
            reason = " / ".join(said[-3:]) or "no reason given"
            raise RedisServerError(f"redis-server on port {self.port} exited: {reason}.")
        try:
            with (
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as connection,
                connection.makefile("rb") as replies,
            ):
                connection.sendall(b"PING\r\nINFO server\r\n")
                if not replies.readline().startswith(b"+PONG"):
                    return False
                header = replies.readline()
                if not header.startswith(b"$"):
                    return False
                info = replies.read(int(header[1:]))
        except (OSError, ValueError):
            return False
        return f"process_id:{process.pid}\r\n".encode() in info

    def _start_once(self, within: float) -> None:
        self._launch()
        deadline = time.monotonic() + within
        try:
            while not self._answers():
                if time.monotonic() > deadline:
                    raise RedisServerError(
                        f"redis-server on port {self.port} did not answer within {within:g}s."
                    )
                time.sleep(0.02)
        except RedisServerError:
            self.stop()
            raise

    def start(self, within: float = 10.0) -> None:
        """Start and wait until it answers (blocking: for synchronous callers)."""
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._start_once(within)
            except PortTaken:
                if not self.port_may_move or attempt == PORT_ATTEMPTS:
                    raise
                self.port = unused_port()
            else:
                self.port_may_move = False
                return

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
