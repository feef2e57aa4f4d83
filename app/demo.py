"""``polly demo``: the sandbox, the gateway bot and the API, nothing to install.

Redis is ``POLLY_REDIS_URL`` when set; otherwise a private redis-server when one is on PATH
(its data in a temporary directory, gone at exit); otherwise fakeredis, in this process. With a
real Redis the API runs as two worker processes, as ``polly api --workers 2`` does (the sandbox
and the bot stay in this process); with fakeredis, which lives in this process, in it too.
``--churn`` makes the sandbox rename and toggle roles every few seconds, so the live refresh
can be watched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as redis

from app.api.app import create_app, server_config
from app.api.workers import Supervisor
from app.bot.runner import run_bot
from app.discord.client import point_discord_py_at
from app.listening import ListeningServer
from app.redis_server import RedisServer
from app.sandbox.bodies import RoleFields
from app.sandbox.builtin import CLIENT_SECRET, default_fixture
from app.sandbox.server import Sandbox
from app.sandbox.state import SandboxState
from app.settings import Settings, database_url
from app.storage.api_keys import ApiKeyStore
from app.storage.database import Database

log = logging.getLogger(__name__)

CHURN_GUILD = "Polly Playground"


@dataclass(frozen=True)
class DemoOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    sandbox_port: int = 8787
    churn: bool = False
    churn_every: float = 3.0
    redis: str = "auto"  # auto, server or fakeredis
    heartbeat_interval_ms: int = 41250
    workers: int | None = None  # API processes; None: 2 with a real Redis, 1 with fakeredis
    log_level: str = "WARNING"


@contextlib.asynccontextmanager
async def embedded_redis(choice: str = "auto") -> AsyncIterator[tuple[str, redis.Redis | None, str]]:
    """(url, in-process client or None, what it is) for the demo's Redis."""
    if os.environ.get("POLLY_REDIS_URL") and choice == "auto":
        yield os.environ["POLLY_REDIS_URL"], None, "POLLY_REDIS_URL"
        return
    executable = shutil.which("redis-server") if choice != "fakeredis" else None
    if choice == "server" and executable is None:
        raise SystemExit(
            "polly demo: --redis server needs redis-server on PATH (apt-get install redis-server)."
        )
    if executable is None:
        import fakeredis

        fake = fakeredis.FakeServer()
        yield "redis://fakeredis/0", fakeredis.FakeAsyncRedis(server=fake), "fakeredis (in this process)"
        return
    with tempfile.TemporaryDirectory(prefix="polly-demo-redis-") as directory:
        server = RedisServer(Path(directory), executable=executable)
        await server.start_async()
        try:
            yield server.url, None, f"a private redis-server on port {server.port}"
        finally:
            await server.stop_async()


async def churn(state: SandboxState, every: float) -> None:
    """Rename and toggle roles of the playground guild, as its owner would."""
    rng = random.Random(7)
    guild = next(g for g in state.guilds.values() if g.guild.name == CHURN_GUILD)
    originals = {role.id: role.name for role in guild.roles.values()}
    turn = 0
    while True:
        await asyncio.sleep(every)
        candidates = [r for r in guild.roles.values() if not r.managed and r.id != guild.id]
        if not candidates:
            continue
        role = rng.choice(candidates)
        turn += 1
        if turn % 2:
            name = f"{originals.get(role.id, role.name)} #{turn}"
            state.update_role(guild.id, role.id, RoleFields(name=name), as_owner=True)
        else:
            state.update_role(guild.id, role.id, RoleFields(mentionable=not role.mentionable), as_owner=True)


async def demo_key(settings: Settings, guild_ids: list[int]) -> str:
    database = Database(database_url(settings))
    try:
        await database.upgrade()
        _, token = await ApiKeyStore(database).create(guild_ids, ["roles:read"], name="polly demo")
    finally:
        await database.close()
    return token


async def run_demo(options: DemoOptions) -> None:
    fixture = default_fixture()
    sandbox = Sandbox(fixture, heartbeat_interval_ms=options.heartbeat_interval_ms)
    await sandbox.start(options.host, options.sandbox_port)
    point_discord_py_at(sandbox.api_url, sandbox.gateway_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    tasks: list[asyncio.Task[None]] = []
    try:
        # Keys and sessions of a demo live as long as the demo.
        with tempfile.TemporaryDirectory(prefix="polly-demo-data-") as data_dir:
            await serve_stack(options, sandbox, stop, tasks, Path(data_dir))
    finally:
        stop.set()
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await sandbox.stop()


async def serve_stack(
    options: DemoOptions,
    sandbox: Sandbox,
    stop: asyncio.Event,
    tasks: list[asyncio.Task[None]],
    data_dir: Path,
) -> None:
    fixture = sandbox.fixture
    async with embedded_redis(options.redis) as (redis_url, client, redis_kind):
        settings = Settings(
            discord_api_url=sandbox.api_url,
            discord_gateway_url=sandbox.gateway_url,
            discord_token=fixture.bot.token,
            redis_url=redis_url,
            data_dir=data_dir,
            # Fresh for each run: sessions of an earlier demo are not honoured.
            secret_key=secrets.token_urlsafe(32),
            discord_client_secret=CLIENT_SECRET,
        )
        bot_client = None if client is None else redis.Redis(connection_pool=client.connection_pool)
        tasks.append(
            asyncio.create_task(run_bot(settings, stop, handle_signals=False, redis_client=bot_client))
        )
        key = await demo_key(settings, [guild.id for guild in fixture.guilds])
        workers = options.workers or (1 if client is not None else 2)
        if workers > 1 and client is not None:
            raise SystemExit(
                "polly demo: --workers above 1 needs a Redis the processes share; fakeredis lives in"
                " this process (install redis-server, or set POLLY_REDIS_URL)."
            )
        if workers > 1:
            supervisor = Supervisor(
                workers, options.host, options.port, None, environment=worker_environment(settings, options)
            )
            api: asyncio.Future[Any] = asyncio.create_task(supervisor.serve())
            listening = await supervisor.listening
            if listening is None:
                raise SystemExit(f"polly demo: the API workers did not start (exit status {await api}).")
            base = listening
            stop_api = supervisor.stop
            serving = f"{workers} worker processes"
        else:
            app = create_app(settings, redis_client=client)
            server = ListeningServer(
                server_config(app, settings, host=options.host, port=options.port, log_level="warning")
            )
            api = await server.serve_in_task()
            # The bound address, not the one asked for: --port 0 asks for any free port.
            base = server.url
            serving = "in this process"

            def stop_api() -> None:
                server.should_exit = True

        if options.churn:
            tasks.append(asyncio.create_task(churn(sandbox.state, options.churn_every)))
        print(
            "Polly demo is running.\n"
            f"  the live role dropdown   {base}/\n"
            f"  GraphQL (GraphiQL)       {base}/graphql\n"
            f"  Discord sandbox          {sandbox.url}/_sandbox/fixture\n"
            f"  Redis                    {redis_kind}\n"
            f"  API                      {serving}\n"
            "  Log in with Discord on the page as any sandbox user (alice owns Polly Playground),\n"
            "  or call the API with a key for every guild (roles:read):\n"
            f"  Authorization: Bearer {key}\n"
            + ("  Roles of Polly Playground change every few seconds (--churn).\n" if options.churn else "")
            + "Press Ctrl+C to stop.",
            flush=True,
        )
        await stop.wait()
        stop_api()
        await api


def worker_environment(settings: Settings, options: DemoOptions) -> dict[str, str]:
    """What an API worker process needs of the demo's settings, as POLLY_* variables."""
    secrets = {
        "POLLY_DISCORD_TOKEN": settings.discord_token,
        "POLLY_SECRET_KEY": settings.secret_key,
        "POLLY_DISCORD_CLIENT_SECRET": settings.discord_client_secret,
    }
    return {
        "POLLY_DISCORD_API_URL": str(settings.discord_api_url),
        "POLLY_DISCORD_GATEWAY_URL": str(settings.discord_gateway_url),
        "POLLY_REDIS_URL": str(settings.redis_url),
        "POLLY_DATA_DIR": str(settings.data_dir),
        "POLLY_LOG_LEVEL": options.log_level,
        **{name: value.get_secret_value() for name, value in secrets.items() if value is not None},
    }
