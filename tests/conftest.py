from __future__ import annotations

import asyncio
import json as json_lib
import os
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import discord
import httpx
import pytest
import pytest_asyncio
import redis
import redis.asyncio as aioredis
import uvicorn
import websockets

from app.api.app import PollyApp, Services, create_app, server_config
from app.api.workers import reuse_port_socket
from app.bot.runner import run_bot
from app.cache.cluster_url import is_cluster_url
from app.cache.connection import open_redis
from app.discord.client import point_discord_py_at
from app.redis_server import RedisServer
from app.roles.snapshot import GuildSnapshot
from app.sandbox.builtin import CLIENT_SECRET, default_fixture
from app.sandbox.fixture import Fixture
from app.sandbox.ratelimit import RateLimitConfig
from app.sandbox.server import Sandbox
from app.sandbox.shapes import role_json
from app.settings import Settings, database_url
from app.storage.api_keys import ApiKeyStore, parse_token
from app.storage.database import Database
from tests.postgres import postgres_server  # noqa: F401  (a fixture, for every test module)

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    """``../shared`` beside the checkout (or where POLLY_SHARED_DIR points), if present."""
    candidates = [os.environ.get("POLLY_SHARED_DIR"), REPO.parent / "shared"]
    for candidate in candidates:
        if candidate and Path(candidate, "discord-api-spec", "openapi.json").is_file():
            return Path(candidate)
    return None


@pytest.fixture
def fixture() -> Fixture:
    return default_fixture()


@pytest_asyncio.fixture
async def sandbox(fixture: Fixture) -> AsyncIterator[Sandbox]:
    running = Sandbox(fixture, rate_limits=RateLimitConfig(route_limit=50))
    await running.start("127.0.0.1", 0)
    point_discord_py_at(running.api_url, running.gateway_url)
    try:
        yield running
    finally:
        await running.stop()


class SandboxHttp:
    """A plain HTTP client for the sandbox, authenticated as the bot unless told otherwise."""

    def __init__(self, session: aiohttp.ClientSession, sandbox: Sandbox) -> None:
        self.session = session
        self.sandbox = sandbox
        self.auth = {"Authorization": f"Bot {sandbox.fixture.bot.token}"}

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> tuple[aiohttp.ClientResponse, Any]:
        url = self.sandbox.api_url + path if not path.startswith("/_sandbox") else self.sandbox.url + path
        merged = {**(self.auth if auth else {}), **(headers or {})}
        async with self.session.request(method, url, json=json, headers=merged) as response:
            raw = await response.read()
            return response, (json_lib.loads(raw) if raw else None)

    async def control(self, method: str, path: str, json: Any = None) -> Any:
        async with self.session.request(method, self.sandbox.url + path, json=json) as response:
            response.raise_for_status()
            return await response.json() if response.status != 204 else None


@pytest_asyncio.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[SandboxHttp]:
    async with aiohttp.ClientSession() as session:
        yield SandboxHttp(session, sandbox)


@pytest_asyncio.fixture
async def bot(sandbox: Sandbox) -> AsyncIterator[discord.Client]:
    """An unmodified discord.Client, logged in to the sandbox and READY."""
    # discord.py waits guild_ready_timeout after the last GUILD_CREATE before READY; the
    # sandbox sends them all at once, so a short wait keeps the suite fast.
    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.5)
    ready = asyncio.Event()

    @client.event
    async def on_ready() -> None:
        ready.set()

    runner = asyncio.create_task(client.start(sandbox.fixture.bot.token))
    try:
        await asyncio.wait_for(ready.wait(), timeout=10)
    except BaseException:
        runner.cancel()
        raise
    try:
        yield client
    finally:
        await client.close()
        await asyncio.wait_for(runner, timeout=10)


async def wait_until(
    condition: Callable[[], Awaitable[bool]], *, within: float, interval: float = 0.02
) -> None:
    """Wait for ``condition`` (state a server owns) to hold; fail after ``within`` seconds."""
    # The state lives in another server, so there is no Event to wait on: poll it.
    async with asyncio.timeout(within):
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(interval)


def guild_id(fixture: Fixture, name: str) -> int:
    return next(guild.id for guild in fixture.guilds if guild.name == name)


def role_id(fixture: Fixture, guild_name: str, role_name: str) -> int:
    guild = next(guild for guild in fixture.guilds if guild.name == guild_name)
    return next(role.id for role in guild.roles if role.name == role_name)


def channel_id(fixture: Fixture, guild_name: str, channel_name: str) -> int:
    guild = next(guild for guild in fixture.guilds if guild.name == guild_name)
    return next(channel.id for channel in guild.channels if channel.name == channel_name)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A throwaway redis-server for the whole run, keeping nothing on disk; never a shared one."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    client = redis.Redis(port=redis_server.port)
    client.flushall()
    client.close()
    return redis_server.url


TEST_SECRET_KEY = "test-secret-key-" + "x" * 32
GRAPHQL_RESPONSE = "application/graphql-response+json"


def polly_environment(sandbox: Sandbox, redis_url: str, data_dir: Path, **settings: str) -> dict[str, str]:
    """This process's environment with the POLLY_* variables a ``polly`` command started by a test
    needs (the sandbox, the test's Redis, a data directory of its own), and ``settings`` on top,
    as ``{"POLLY_NAME": value}``."""
    return {
        **os.environ,
        "POLLY_DISCORD_API_URL": sandbox.api_url,
        "POLLY_DISCORD_GATEWAY_URL": sandbox.gateway_url,
        "POLLY_DISCORD_TOKEN": sandbox.fixture.bot.token,
        "POLLY_REDIS_URL": redis_url,
        "POLLY_SECRET_KEY": TEST_SECRET_KEY,
        "POLLY_DATA_DIR": str(data_dir),
        "POLLY_LOG_LEVEL": "WARNING",
        **settings,
    }


async def create_key(settings: Settings, guild_ids: list[int], scopes: list[str], name: str = "test") -> str:
    """An API key in the API's own database, as ``polly keys create`` makes one; its token."""
    database = Database(database_url(settings))
    try:
        await database.upgrade()
        _, token = await ApiKeyStore(database).create(guild_ids, scopes, name=name)
    finally:
        await database.close()
    return token


async def revoke_key(settings: Settings, redis_url: str, token: str) -> bytes:
    """``polly keys revoke`` as an operator runs it, for the key of ``token``; what it printed."""
    parsed = parse_token(token)
    assert parsed is not None, token
    env = {**os.environ, "POLLY_DATA_DIR": str(settings.data_dir), "POLLY_REDIS_URL": redis_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "keys", "revoke", parsed[0], cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0 and err == b"", err.decode()
    return out


async def until_closed(ws: Any, within: float = 5) -> list[dict[str, Any]]:
    """Every message a WebSocket receives until the server closes it; fails if it does not."""
    received: list[dict[str, Any]] = []
    async with asyncio.timeout(within):
        try:
            while True:
                received.append(json_lib.loads(await ws.recv()))
        except websockets.ConnectionClosed:
            return received


class RunningApi:
    """``polly api``'s application served by uvicorn on a real socket, with an HTTP client that
    sends an API key for every fixture guild (``roles:read``).

    With several workers, each is a whole application (its own services: hub, fan-out, caches)
    served on its own socket of one shared port (SO_REUSEPORT), as ``polly api --workers``
    runs them, here in the test's process so that tests can look inside each; the kernel
    spreads connections over them. ``app`` and ``services`` are the first worker's."""

    def __init__(
        self,
        workers: list[tuple[PollyApp, uvicorn.Server]],
        sandbox: Sandbox,
        settings: Settings,
        key: str,
    ) -> None:
        self.workers = workers
        self.app, self.server = workers[0]
        server = self.server
        self.sandbox = sandbox
        self.settings = settings
        self.key = key
        self.auth = {"Authorization": f"Bearer {key}"}
        port = server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/graphql"
        # As GraphQL clients of today ask (graphql-http, urql, Apollo): request errors come
        # back with their 4xx status; tests of legacy clients leave Accept out themselves.
        accept = {"Accept": f"{GRAPHQL_RESPONSE}, application/json"}
        self.client = httpx.AsyncClient(base_url=self.url, timeout=30, headers={**accept, **self.auth})

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    @property
    def every_services(self) -> list[Services]:
        """Each worker's services."""
        return [app.state.services for app, _ in self.workers]

    def worker_of(self, client: Any) -> int:
        """The worker (an index into ``workers``) that serves the connection whose client end
        is at ``client`` (host and port, as the client's socket names its own address): the
        kernel picked it when the connection was made."""
        address = (str(client[0]), int(client[1]))
        for index, (_, server) in enumerate(self.workers):
            # uvicorn's protocol of each connection (HTTP, or the WebSocket it was upgraded to)
            # knows its peer.
            if any(getattr(c, "client", None) == address for c in server.server_state.connections):
                return index
        raise AssertionError(f"no worker serves the connection from {address}")

    @property
    def subscribers(self) -> int:
        """Subscribers of shared subscriptions, over every worker."""
        return sum(services.streaming.fanout.subscribers for services in self.every_services)

    @property
    def hub_guilds(self) -> int:
        """Guilds whose events some worker's hub subscribes to, counted once per worker."""
        return sum(services.hub.guilds for services in self.every_services)

    async def query(
        self, query: str, variables: dict[str, Any] | None = None, *, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        response = await self.client.post("/graphql", json=body, headers=headers)
        return response.status_code, response.json()

    def rest_calls(self) -> int:
        total: int = self.sandbox.stats.snapshot()["total"]  # type: ignore[assignment]
        return total

    def calls_to(self, route: str) -> int:
        by_route: dict[str, int] = self.sandbox.stats.snapshot()["by_route"]  # type: ignore[assignment]
        return by_route.get(route, 0)


async def start_api(
    sandbox: Sandbox, redis_url: str, *, port: int = 0, workers: int = 1, **overrides: Any
) -> RunningApi:
    defaults: dict[str, Any] = {
        "secret_key": TEST_SECRET_KEY,
        "discord_client_secret": CLIENT_SECRET,
        # Tests fire bursts on purpose; the rate limiter's own tests set tight limits.
        "rate_limit_burst": 1_000_000,
        "rate_limit_per_second": 1_000_000.0,
        # Likewise hundreds of sockets from loopback; tests/test_transport_limits.py sets its own.
        "max_connections_per_address": 1_000_000,
    }
    if "data_dir" not in overrides and "database_url" not in overrides:
        defaults["data_dir"] = Path(tempfile.mkdtemp(prefix="polly-test-data-"))
    settings = Settings(
        discord_api_url=sandbox.api_url,
        discord_gateway_url=sandbox.gateway_url,
        discord_token=sandbox.fixture.bot.token,
        redis_url=redis_url,
        **{**defaults, **overrides},
    )
    sockets: list[socket.socket | None] = [None]
    if workers > 1:
        first = reuse_port_socket("127.0.0.1", port)
        port = first.getsockname()[1]
        sockets = [first, *(reuse_port_socket("127.0.0.1", port) for _ in range(workers - 1))]
    started: list[tuple[PollyApp, uvicorn.Server]] = []
    tasks: list[asyncio.Task[None]] = []
    for sock in sockets:
        app = create_app(settings)
        config = server_config(app, settings, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=None if sock is None else [sock]))
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        started.append((app, server))
        tasks.append(task)
    key = await create_key(settings, [guild.id for guild in sandbox.fixture.guilds], ["roles:read"])
    running = RunningApi(started, sandbox, settings, key)
    running.tasks = tasks  # type: ignore[attr-defined]
    return running


async def stop_api(api: RunningApi) -> None:
    await api.client.aclose()
    for _, server in api.workers:
        server.should_exit = True
    await asyncio.wait_for(asyncio.gather(*api.tasks), timeout=10)  # type: ignore[attr-defined]


@pytest.fixture
def workers() -> int:
    """API workers the ``api`` fixtures start: one, unless a test is marked ``workers_1_and_2``."""
    return 1


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # A test marked workers_1_and_2 runs twice: against one API worker, and against two
    # sharing the port.
    if "workers" in metafunc.fixturenames and metafunc.definition.get_closest_marker("workers_1_and_2"):
        metafunc.parametrize("workers", [1, 2], ids=["workers-1", "workers-2"])


@pytest_asyncio.fixture
async def api_factory(
    sandbox: Sandbox, redis_url: str, tmp_path: Path, workers: int
) -> AsyncIterator[Callable[..., Awaitable[RunningApi]]]:
    started: list[RunningApi] = []

    async def make(**overrides: Any) -> RunningApi:
        # The APIs of one test share a database, as the processes of one deployment do.
        overrides.setdefault("data_dir", tmp_path / "data")
        overrides.setdefault("workers", workers)
        running = await start_api(sandbox, overrides.pop("redis_url", redis_url), **overrides)
        started.append(running)
        return running

    try:
        yield make
    finally:
        for running in started:
            await stop_api(running)


@pytest_asyncio.fixture
async def gateway_bot(bot_factory: Callable[[str], Awaitable[RunningBot]], redis_url: str) -> RunningBot:
    """``polly bot`` writing the sandbox's guilds through to the test's Redis."""
    return await bot_factory(redis_url)


@pytest_asyncio.fixture
async def api(api_factory: Callable[..., Awaitable[RunningApi]]) -> RunningApi:
    running = await api_factory()
    running.sandbox.stats.reset()  # the API's login is not the test's business
    return running


class RunningBot:
    def __init__(self, sandbox: Sandbox, redis_url: str, **overrides: Any) -> None:
        self.sandbox = sandbox
        cluster = is_cluster_url(redis_url)
        self.redis = open_redis(redis_url, timeout=5) if cluster else aioredis.Redis.from_url(redis_url)
        if "data_dir" not in overrides and "database_url" not in overrides:
            # The poll scheduler's database: the test's own, never the user's.
            overrides["data_dir"] = Path(tempfile.mkdtemp(prefix="polly-test-bot-"))
        self.settings = Settings(
            discord_api_url=sandbox.api_url,
            discord_gateway_url=sandbox.gateway_url,
            discord_token=sandbox.fixture.bot.token,
            redis_url=redis_url,
            **overrides,
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def bot_guild_ids(self) -> set[int]:
        bot = self.sandbox.state.bot.id
        return {g.id for g in self.sandbox.state.guilds.values() if bot in g.members}

    async def cached(self, guild: int) -> GuildSnapshot | None:
        try:
            raw = await self.redis.get(f"guild_roles_ping:{{{guild}}}")
        except aioredis.ConnectionError:
            return None  # Redis restarting: this client reconnects on the next call
        return None if raw is None else GuildSnapshot.from_json(raw)

    async def matches_sandbox(self, guild: int) -> bool:
        """The cached guild holds exactly the sandbox's roles, bot roles and overwrites."""
        cached = await self.cached(guild)
        state = self.sandbox.state.guilds[guild]
        if cached is None:
            return False
        roles = sorted((role_json(r) for r in state.roles.values()), key=lambda r: r["id"])
        overwrites = {
            c.id: sorted((o.id, o.type, o.allow, o.deny) for o in c.permission_overwrites)
            for c in state.channels.values()
        }
        return (
            sorted(cached.roles, key=lambda r: r["id"]) == roles
            and set(cached.bot_role_ids) == set(state.members[self.sandbox.state.bot.id].roles)
            and {
                c: sorted((o.id, o.type, o.allow, o.deny) for o in d.overwrites)
                for c, d in cached.channels.items()
            }
            == overwrites
        )

    async def all_cached(self) -> bool:
        return all([await self.matches_sandbox(g) for g in self.bot_guild_ids()])

    async def events(self, guild: int) -> list[dict[str, Any]]:
        entries = await self.redis.xrange(f"guild_events:{{{guild}}}")
        return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


@pytest_asyncio.fixture
async def bot_factory(sandbox: Sandbox) -> AsyncIterator[Callable[..., Awaitable[RunningBot]]]:
    started: list[RunningBot] = []

    async def start(redis_url: str, **overrides: Any) -> RunningBot:
        running = RunningBot(sandbox, redis_url, **overrides)
        running.task = asyncio.create_task(run_bot(running.settings, running.stop, handle_signals=False))
        started.append(running)
        await wait_until(running.all_cached, within=20)
        return running

    try:
        yield start
    finally:
        for running in started:
            running.stop.set()
            if running.task is not None:
                await asyncio.wait_for(running.task, timeout=20)
            await running.redis.aclose()


# -- polls -----------------------------------------------------------------------------------

# Here, not at the top: poll_stack builds on the helpers above.
from tests import poll_stack  # noqa: E402


@pytest.fixture
async def stack(
    api_factory: Callable[..., Awaitable[RunningApi]],
    bot_factory: Callable[..., Awaitable[RunningBot]],
    http: SandboxHttp,
    redis_url: str,
) -> poll_stack.Polls:
    """An API and a key to run polls; ``start_bot()`` starts a ``polly bot`` on its database."""
    api = await api_factory()
    key = await create_key(
        api.settings, [g.id for g in api.sandbox.fixture.guilds], ["roles:read", "polls:read", "polls:write"]
    )
    return poll_stack.Polls(api, http, key, lambda: bot_factory(redis_url, data_dir=api.settings.data_dir))


@pytest.fixture
async def polls(stack: poll_stack.Polls) -> poll_stack.Polls:
    """The stack with one ``polly bot`` running."""
    await stack.start_bot()
    return stack
