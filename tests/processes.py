"""Processes a test starts on port 0, and ports where nothing listens.

A port picked free and given to a process later can be taken by another process in between
(tests run beside other tests and benchmarks). So servers are started with ``--port 0`` and
the test reads the URL they print once listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
URL = re.compile(r"\b(?:http|ws)://[^\s/]+")


@dataclass
class Announced:
    """A process that has said where it listens."""

    process: asyncio.subprocess.Process
    banner: str
    """Its stdout up to and including the line it was awaited for."""
    stdout: asyncio.Task[bytes]
    """The rest of its stdout, read all along (a full pipe would stall the process)."""
    stderr: asyncio.Task[bytes]
    """All of its stderr, likewise."""

    @property
    def url(self) -> str:
        """The first URL of the banner, scheme, host and port: where the process listens."""
        found = URL.search(self.banner)
        assert found is not None, f"no URL in {self.banner!r}"
        return found[0]


@contextlib.asynccontextmanager
async def announced(
    *args: str, env: dict[str, str] | None = None, line: str = URL.pattern, within: float = 30
) -> AsyncIterator[Announced]:
    """Start ``args`` in the repository (``env``: its whole environment, else ours) and wait
    until a line of its stdout matches ``line`` (by default: names a URL). On exit, SIGTERM
    it if still running, and SIGKILL it if it lingers."""
    process = await asyncio.create_subprocess_exec(
        *args, cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    stderr = asyncio.create_task(process.stderr.read())
    stdout: asyncio.Task[bytes] | None = None
    command = " ".join(args)
    banner = ""
    try:
        try:
            async with asyncio.timeout(within):
                while True:
                    read = (await process.stdout.readline()).decode(errors="replace")
                    if not read:
                        await process.wait()
                        raise AssertionError(
                            f"{command} exited ({process.returncode}) before printing a line matching"
                            f" {line!r}:\n{banner}{(await stderr).decode(errors='replace')}"
                        )
                    banner += read
                    if re.search(line, read):
                        break
        except TimeoutError:
            raise AssertionError(
                f"{command} printed no line matching {line!r} within {within:g}s:\n{banner}"
            ) from None
        stdout = asyncio.create_task(process.stdout.read())
        yield Announced(process, banner, stdout, stderr)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=15)
            except TimeoutError:
                process.kill()
                await process.wait()
        for drain in (stdout, stderr):
            if drain is not None and not drain.done():
                drain.cancel()


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port where connections are refused while this holds it: bound, so that no
    other process can take it and start listening, but never listening itself."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port: int = held.getsockname()[1]
        yield port
