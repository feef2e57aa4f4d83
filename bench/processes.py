"""Starting the real parts for a benchmark: a private redis-server, the sandbox, API processes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any

import httpx

from app.redis_server import RedisServer, RedisServerError

REPO = Path(__file__).resolve().parents[1]
URL = re.compile(r"http://[^\s/]+")


class Stack(contextlib.ExitStack):
    """Processes started for one benchmark run, stopped (SIGTERM, then SIGKILL) on exit."""

    # Where the processes' stderr goes: ours unless a bench sets a file (to summarize their logs).
    stderr: IO[bytes] | None = None

    def spawn(
        self,
        args: list[str],
        env: dict[str, str] | None = None,
        *,
        stdout: int = subprocess.DEVNULL,
        stdin: int | None = None,
    ) -> subprocess.Popen[bytes]:
        # stderr goes to ours (or to Stack.stderr): a process that fails says why where the bench's
        # user sees it.
        process = subprocess.Popen(
            args, cwd=REPO, env={**os.environ, **(env or {})}, stdout=stdout, stdin=stdin, stderr=self.stderr
        )
        self.last = process

        def stop() -> None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

        self.callback(stop)
        return process

    def spawn_listening(
        self, args: list[str], env: dict[str, str] | None = None, within: float = 30.0
    ) -> str:
        """Start a server given port 0 and return the URL it prints on stdout once listening
        (scheme, host and port): a port picked here and bound there later could be taken by
        another process in between."""
        process = self.spawn(args, env, stdout=subprocess.PIPE)
        assert process.stdout is not None
        stdout = process.stdout
        url: Future[str] = Future()

        def read() -> None:
            # Reads to the end, so that the process never blocks on a full pipe.
            for line in stdout:
                found = URL.search(line.decode(errors="replace"))
                if found is not None and not url.done():
                    url.set_result(found[0])
            if not url.done():
                url.set_exception(
                    RuntimeError(f"{args} exited ({process.wait()}) before saying where it listens")
                )

        threading.Thread(target=read, daemon=True).start()
        try:
            return url.result(timeout=within)
        except TimeoutError:
            raise RuntimeError(f"{args} did not say where it listens within {within:g}s") from None

    def redis(self) -> str:
        directory = Path(self.enter_context(tempfile.TemporaryDirectory(prefix="polly-bench-redis-")))
        try:
            server = RedisServer(directory)
        except RedisServerError as error:
            raise SystemExit(str(error)) from None
        server.start()
        self.callback(server.stop)
        return server.url

    def sandbox(self, fixture: dict[str, Any] | None = None, *args: str) -> str:
        command = [sys.executable, "-m", "app", "sandbox", "--port", "0", *args]
        if fixture is not None:
            path = Path(self.enter_context(tempfile.TemporaryDirectory())) / "fixture.json"
            path.write_text(json.dumps(fixture))
            command += ["--fixture", str(path)]
        return self.spawn_listening(command, {"POLLY_LOG_LEVEL": "WARNING"})

    data_dir: str | None = None
    auth: dict[str, str] = {}

    def api(self, sandbox_url: str, redis_url: str, *, workers: int = 1, **settings: str) -> str:
        """A ``polly api`` process (with ``workers`` > 1, a supervisor and its workers); the APIs
        of one Stack share a database, and ``self.auth`` holds the headers of a key for every
        sandbox guild."""
        if self.data_dir is None:
            self.data_dir = self.enter_context(tempfile.TemporaryDirectory(prefix="polly-bench-"))
        access = {
            "secret_key": "bench-secret-key-" + "x" * 32,
            "data_dir": self.data_dir,
            # The benchmarks measure the API, not its rate limiter.
            "rate_limit_burst": "100000000",
            "rate_limit_per_second": "100000000",
            # Nor how many connections one address may open (they all come from loopback).
            "max_connections_per_address": "100000000",
        }
        env = polly_env(sandbox_url, redis_url, {**access, **settings})
        if not self.auth:
            guilds = [g["id"] for g in httpx.get(f"{sandbox_url}/_sandbox/fixture").json()["guilds"]]
            created = subprocess.run(
                [sys.executable, "-m", "app", "keys", "create", "--scope", "roles:read", "--json",
                 *(argument for guild in guilds for argument in ("--guild", guild))],
                cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, check=True,
            )  # fmt: skip
            self.auth = {"Authorization": f"Bearer {json.loads(created.stdout)['token']}"}
        command = [sys.executable, "-m", "app", "api", "--port", "0"]
        if workers > 1:
            command += ["--workers", str(workers)]
        return self.spawn_listening(command, env)

    def bot(self, sandbox_url: str, redis_url: str, *, origin_design: bool = False, **settings: str) -> None:
        """polly bot; or, with ``origin_design``, the origin design's invalidating bot."""
        command = [
            sys.executable,
            "-m",
            "bench.origin_bot" if origin_design else "app",
            *([] if origin_design else ["bot"]),
        ]
        self.spawn(command, polly_env(sandbox_url, redis_url, settings))


def polly_env(sandbox_url: str, redis_url: str, settings: dict[str, str]) -> dict[str, str]:
    """POLLY_* variables pointing a polly process at the sandbox and Redis, plus ``settings``."""
    token = httpx.get(f"{sandbox_url}/_sandbox/fixture").json()["bot"]["token"]
    return {
        "POLLY_DISCORD_API_URL": f"{sandbox_url}/api/v10",
        "POLLY_DISCORD_GATEWAY_URL": sandbox_url.replace("http", "ws") + "/gateway",
        "POLLY_DISCORD_TOKEN": token,
        "POLLY_REDIS_URL": redis_url,
        "POLLY_LOG_LEVEL": "WARNING",
        "POLLY_BOT_METRICS_PORT": "0",  # several bots may run: each on a port of its own
        **{f"POLLY_{name.upper()}": value for name, value in settings.items()},
    }


def sandbox_stats(sandbox_url: str) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{sandbox_url}/_sandbox/stats").json()
    return stats


def reset_sandbox_stats(sandbox_url: str) -> None:
    httpx.post(f"{sandbox_url}/_sandbox/stats/reset")
