"""``polly api --workers N``: N whole ``polly api`` processes on one port.

Each worker is an ordinary ``polly api`` process with its own listening socket on the shared
port (SO_REUSEPORT), rather than uvicorn's workers sharing one socket: the kernel spreads new
connections evenly over the workers' sockets, which matters when connections are WebSockets that
stay for hours (with one shared socket, whichever worker is awake when a burst arrives accepts
most of it); and nothing has to be pickled into a spawned child (uvicorn's workers re-create the
application from an import string, ours is built from settings). This supervisor reserves the
port (the real one, for ``--port 0``), starts the workers, restarts one that dies, and stops them
all on SIGTERM or SIGINT. Workers share their metrics through ``POLLY_METRICS_DIR`` (a directory
of its own when the setting is unset), so a scrape of the port counts them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0
# How long a worker may take to stop (it closes its sockets, then its Redis and database
# connections) before it is killed: a worker that hangs must not keep the supervisor alive.
STOP_TIMEOUT = 30.0
# A worker stopped as asked: by the supervisor's SIGTERM, or by Ctrl+C reaching the whole group
# (the signal's own status when it came before the worker's handlers were in place).
_STOPPED = frozenset({0, 128 + signal.SIGINT, -signal.SIGTERM, -signal.SIGINT})
LISTENING = "Polly API listening on "


class WorkersUnsupported(Exception):
    """The system cannot share a port between processes (no SO_REUSEPORT)."""


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` that other processes may bind as well (SO_REUSEPORT)."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise WorkersUnsupported(
            "This system cannot share a port between processes (no SO_REUSEPORT); run one polly api"
            " per port behind a proxy instead of --workers."
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP said, not left 0: asyncio turns TCP_NODELAY on for the connections it accepts
    # only when the listening socket says so, and without it small frames wait on Nagle.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _metrics_directory(configured: Path | None) -> tuple[Path, bool]:
    """The directory the workers share their metrics through, emptied; and whether it is ours
    to remove at the end."""
    if configured is None:
        return Path(tempfile.mkdtemp(prefix="polly-metrics-")), True
    configured.mkdir(parents=True, exist_ok=True)
    # Values a previous run left would be added to this run's.
    for stale in configured.glob("*.db"):
        stale.unlink()
    return configured, False


class Supervisor:
    """``workers`` ``polly api`` processes on ``host:port``, with this process's environment and
    ``environment`` (the demo's settings, say) on top."""

    def __init__(
        self,
        workers: int,
        host: str,
        port: int,
        metrics_dir: Path | None,
        *,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.workers = workers
        self.host = host
        self.port = port
        self.extra_environment = dict(environment or {})
        self.metrics_dir, self._remove_metrics_dir = _metrics_directory(metrics_dir)
        self.stopping = asyncio.Event()
        self.stopped_by = int(signal.SIGTERM)
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        # The URL the workers answer on, once every one listens; None if one could not start.
        self.listening: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

    def command(self, port: int) -> list[str]:
        return [sys.executable, "-m", "app", "api", "--host", self.host, "--port", str(port), "--reuse-port"]

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.extra_environment, "POLLY_METRICS_DIR": str(self.metrics_dir)}

    async def run(self) -> int:
        """Serve until SIGTERM or SIGINT; the exit status."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._stop, signum)
        return await self.serve()

    def stop(self) -> None:
        self.stopping.set()

    async def serve(self) -> int:
        """Serve until ``stop`` (or a signal ``run`` handles); the exit status."""
        try:
            return await self._serve()
        finally:
            if not self.listening.done():
                self.listening.set_result(None)  # whoever waits for it: it never listened

    async def _serve(self) -> int:
        reserved = reuse_port_socket(self.host, self.port)
        port = int(reserved.getsockname()[1])
        try:
            started = [asyncio.create_task(self._start(number, port)) for number in range(self.workers)]
            if not all(await asyncio.gather(*started)):
                self.stopping.set()
                await self._stop_all()
                self.listening.set_result(None)
                return 3
            url = f"http://[{self.host}]:{port}" if ":" in self.host else f"http://{self.host}:{port}"
            self.listening.set_result(url)
            print(f"{LISTENING}{url} ({self.workers} workers)", flush=True)
            keepers = [asyncio.create_task(self._keep(number, port)) for number in range(self.workers)]
            await self.stopping.wait()
            stopped_cleanly = await self._stop_all()
            for keeper in keepers:
                keeper.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
        finally:
            reserved.close()
            if self._remove_metrics_dir:
                shutil.rmtree(self.metrics_dir, ignore_errors=True)
        if not stopped_cleanly:
            return 1  # the workers' own lines above say which failed and how
        return 0 if self.stopped_by == signal.SIGTERM else 128 + self.stopped_by

    def _stop(self, signum: int) -> None:
        self.stopped_by = signum
        self.stopping.set()

    async def _start(self, number: int, port: int) -> bool:
        """Start worker ``number``; True once it listens, False if it ended before that."""
        process = await asyncio.create_subprocess_exec(
            *self.command(port), env=self.environment(), stdout=asyncio.subprocess.PIPE
        )
        self.processes[number] = process
        if process.stdout is None:
            raise RuntimeError("a worker was started without its stdout piped")
        async for line in process.stdout:
            if line.decode(errors="replace").startswith(LISTENING):
                # The rest of its stdout is not read: nothing else is printed there.
                return True
        await process.wait()
        if self.stopping.is_set():
            return False  # stopped while starting, as asked
        log.error(
            "Worker %d (pid %d) exited with %s before listening.", number, process.pid, process.returncode
        )
        return False

    async def _keep(self, number: int, port: int) -> None:
        """Restart worker ``number`` whenever it ends, until the supervisor stops."""
        while not self.stopping.is_set():
            process = self.processes[number]
            code = await process.wait()
            self._forget(process.pid)
            if self.stopping.is_set():
                return
            log.warning("Worker %d (pid %d) exited with %s; starting another.", number, process.pid, code)
            with contextlib.suppress(asyncio.TimeoutError):
                async with asyncio.timeout(RESTART_DELAY):
                    await self.stopping.wait()
            if not self.stopping.is_set():
                await self._start(number, port)

    def _forget(self, pid: int) -> None:
        """A worker that ended without its own clean-up takes its live gauges with it."""
        from prometheus_client import multiprocess  # imported late: POLLY_METRICS_DIR is set by now

        multiprocess.mark_process_dead(pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]

    async def _stop_all(self) -> bool:
        """Stop every running worker; whether each stopped as asked within STOP_TIMEOUT (one
        that did not is killed)."""
        running = [p for p in self.processes.values() if p.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        if running:
            await asyncio.wait([asyncio.create_task(p.wait()) for p in running], timeout=STOP_TIMEOUT)
        clean = True
        for process in running:
            if process.returncode is None:
                log.error("Worker (pid %d) did not stop within %g s; killing it.", process.pid, STOP_TIMEOUT)
                process.kill()
                await process.wait()
                clean = False
            elif process.returncode not in _STOPPED:
                log.error("Worker (pid %d) stopped with status %s.", process.pid, process.returncode)
                clean = False
            self._forget(process.pid)
        return clean


async def supervise(workers: int, host: str, port: int, metrics_dir: Path | None) -> int:
    return await Supervisor(workers, host, port, metrics_dir).run()


def run_workers(workers: int, host: str, port: int, metrics_dir: Path | None) -> int:
    try:
        return asyncio.run(supervise(workers, host, port, metrics_dir))
    except WorkersUnsupported as error:
        print(f"polly api: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"polly api: cannot listen on {host}:{port}: {error.strerror or error}.", file=sys.stderr)
        return 2
