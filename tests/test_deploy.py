"""The deployment: deploy/compose.yaml as docker-compose reads it, and the same topology run as
local processes — PostgreSQL, ``polly db upgrade`` as its own step, two ``polly api`` replicas
behind nginx with the shipped deploy/nginx/polly.conf, and ``polly bot`` — answering queries,
subscriptions and polls across the replicas."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
import websockets
import yaml

from app.sandbox.builtin import CLIENT_SECRET
from app.sandbox.server import Sandbox
from tests.conftest import channel_id, guild_id, role_id, wait_until
from tests.postgres import PostgresServer
from tests.processes import announced

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
COMPOSE = shutil.which("docker-compose")
NGINX = shutil.which("nginx") or next(
    (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)), None
)
CHANGES = "subscription($g: ID!) { guildRolesChanged(guildId: $g) { eventId kind roleId } }"
SERVICES = {"redis", "postgres", "migrate", "api", "proxy", "bot", "prometheus"}
POLLY_SERVICES = ("migrate", "api", "bot")


def without_polly_variables() -> dict[str, str]:
    """Our environment minus POLLY_* and POSTGRES_*: docker-compose prefers the shell's values to
    the env file's, and a process would read them as settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("POLLY_", "POSTGRES_"))}


def compose(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert COMPOSE is not None
    return subprocess.run(
        [COMPOSE, "-f", str(DEPLOY / "compose.yaml"), "--project-directory", str(DEPLOY),
         "--env-file", str(env_file), *args],
        capture_output=True, text=True, env=without_polly_variables(), timeout=60,
    )  # fmt: skip


needs_compose = pytest.mark.skipif(
    COMPOSE is None, reason="docker-compose is not installed (scripts/test installs it)"
)


@needs_compose
def test_compose_file_is_valid_and_wires_the_topology() -> None:
    result = compose(DEPLOY / ".env.example", "config")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services: dict[str, Any] = config["services"]
    assert set(services) == SERVICES
    assert services["api"]["deploy"]["replicas"] == 2
    for name in POLLY_SERVICES:
        environment = services[name]["environment"]
        assert [key for key in environment if not key.startswith("POLLY_")] == [], name
        assert environment["POLLY_DATABASE_URL"].startswith("postgresql+asyncpg://polly:"), name
        assert environment["POLLY_DATABASE_URL"].endswith("@postgres:5432/polly"), name
        assert environment["POLLY_REDIS_URL"] == "redis://redis:6379/0"
        assert services[name]["build"]["context"] == str(REPO)
    assert services["migrate"]["command"] == ["polly", "db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "bot"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert "redis" in services[name]["depends_on"]
    assert services["api"]["command"][:2] == ["polly", "api"]
    assert services["bot"]["command"] == ["polly", "bot"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])

    # The API trusts exactly the network it shares with the proxy, and only they are on it.
    edge = config["networks"]["edge"]["ipam"]["config"][0]["subnet"]
    assert services["api"]["environment"]["POLLY_TRUSTED_PROXIES"] == edge
    assert [name for name in services if "edge" in services[name]["networks"]] == ["api", "proxy"]
    assert services["proxy"]["ports"] == [{"published": 8080, "target": 80}]
    mounts = services["proxy"]["volumes"]
    assert f"{DEPLOY}/nginx/server.conf:/etc/nginx/conf.d/default.conf:ro" in mounts
    assert f"{DEPLOY}/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]


def test_env_example_names_every_variable_compose_reads() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    substituted = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    passed_on = set(re.findall(r"^\s+(POLLY_[A-Z0-9_]+):\s*$", text, flags=re.MULTILINE))
    # Set, or shown commented out for the optional ones.
    example = set(re.findall(r"^#? ?([A-Z0-9_]+)=", (DEPLOY / ".env.example").read_text(), re.MULTILINE))
    assert passed_on, "compose.yaml passes no optional POLLY_* setting on"
    assert (substituted | passed_on) - example == set()
    assert {name for name in example if not name.startswith(("POLLY_", "POSTGRES_"))} == set()


@needs_compose
def test_a_missing_secret_stops_compose_with_a_sentence_naming_it(tmp_path: Path) -> None:
    lines = (DEPLOY / ".env.example").read_text().splitlines()
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(line for line in lines if not line.startswith("POLLY_DISCORD_TOKEN=")))
    result = compose(env_file, "config", "--quiet")
    assert result.returncode != 0
    assert "set POLLY_DISCORD_TOKEN in deploy/.env" in result.stderr


# -- the topology as local processes ---------------------------------------------------------


@contextlib.contextmanager
def listening_socket() -> Iterator[socket.socket]:
    """A loopback socket already listening on a port of the system's choosing."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        yield listener


@contextlib.asynccontextmanager
async def nginx(directory: Path, replicas: list[str]) -> AsyncIterator[str]:
    """nginx in front of ``replicas`` (host:port), with the shipped polly.conf; its URL.

    nginx cannot listen on a port of the system's choosing and say which, so it is handed a
    socket this test bound (the NGINX variable: how nginx passes its sockets to a new binary),
    and no other process can take the port in between."""
    assert NGINX is not None
    upstream = "".join(f"    server {replica};\n" for replica in replicas)
    (directory / "upstream.conf").write_text(f"upstream polly_api {{\n{upstream}    keepalive 8;\n}}\n")
    # Run as root, nginx's workers would be nobody, shut out of this private directory.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"    {kind}_temp_path {directory / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    log = directory / "error.log"
    with listening_socket() as listener:
        port = listener.getsockname()[1]
        (directory / "nginx.conf").write_text(
            f"{user}worker_processes 1;\npid {directory / 'nginx.pid'};\nerror_log {log} notice;\n"
            "events {}\n"
            "http {\n"
            f"    access_log {directory / 'access.log'};\n{temp}"
            f"    include {directory / 'upstream.conf'};\n"
            f"    server {{\n        listen 127.0.0.1:{port};\n"
            f"        include {DEPLOY / 'nginx' / 'polly.conf'};\n    }}\n"
            "}\n"
        )
        with (directory / "output.log").open("wb") as output:
            process = await asyncio.create_subprocess_exec(
                NGINX, "-p", str(directory), "-e", str(log), "-c", str(directory / "nginx.conf"),
                "-g", "daemon off;", env={**os.environ, "NGINX": f"{listener.fileno()};"},
                pass_fds=[listener.fileno()], stdout=output, stderr=output,
            )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:

            async def serving() -> bool:
                if process.returncode is not None:
                    printed = (directory / "output.log").read_text()
                    raise AssertionError(f"nginx exited ({process.returncode}): {printed}{log.read_text()}")
                return (await client.get("/healthz")).status_code == 200

            await wait_until(serving, within=20, interval=0.05)
        yield url
        problems = [
            line for line in log.read_text().splitlines() if re.search(r"\[(error|crit|alert|emerg)\]", line)
        ]
        assert problems == [], "nginx logged errors"
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), timeout=15)


async def requests_by_operation(client: httpx.AsyncClient, replica: str, operation: str) -> int:
    """How many requests of ``operation`` this replica answered, from its own /metrics."""
    text = (await client.get(f"{replica}/metrics")).text
    found = re.search(
        rf'^polly_requests_total\{{operation="{operation}",outcome="ok"\}} (\d+)\.0$', text, re.M
    )
    return int(found[1]) if found else 0


async def subscriptions(client: httpx.AsyncClient, replica: str, transport: str) -> int:
    """How many subscriptions of ``transport`` this replica runs, from its own /metrics."""
    text = (await client.get(f"{replica}/metrics")).text
    found = re.search(rf'^polly_subscriptions\{{transport="{transport}"\}} (\d+)\.0$', text, re.M)
    return int(found[1]) if found else 0


async def run_polly(*args: str, env: dict[str, str]) -> str:
    """A one-off polly command (db upgrade, keys create) to its end; what it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", *args, cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, f"polly {' '.join(args)} exited {process.returncode}: {err.decode()}"
    return out.decode()


@contextlib.asynccontextmanager
async def subscription(url: str, key: str, guild: int) -> AsyncIterator[Any]:
    """A graphql-transport-ws socket through the proxy, subscribed to the guild's role changes."""
    async with websockets.connect(
        url.replace("http", "ws", 1) + "/graphql",
        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
    ) as ws:
        assert ws.subprotocol == "graphql-transport-ws"
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 20))["type"] == "connection_ack"
        payload = {"query": CHANGES, "variables": {"g": str(guild)}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        yield ws


async def next_change(ws: Any, within: float) -> dict[str, Any]:
    message = json.loads(await asyncio.wait_for(ws.recv(), within))
    assert message["type"] == "next", message
    change: dict[str, Any] = message["payload"]["data"]["guildRolesChanged"]
    return change


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (scripts/test installs it)")
@pytest.mark.timeout(120)
async def test_replicas_behind_nginx_serve_queries_subscriptions_and_polls(
    postgres_server: PostgresServer, redis_url: str, sandbox: Sandbox, tmp_path: Path
) -> None:
    database = await postgres_server.create_database()
    try:
        await run_topology(postgres_server, database, redis_url, sandbox, tmp_path)
    finally:
        await postgres_server.drop_database(database)


async def run_topology(
    postgres_server: PostgresServer, database: str, redis_url: str, sandbox: Sandbox, tmp_path: Path
) -> None:
    env = {
        **without_polly_variables(),
        "POLLY_DATABASE_URL": postgres_server.url(database),
        "POLLY_REDIS_URL": redis_url,
        "POLLY_DISCORD_API_URL": sandbox.api_url,
        "POLLY_DISCORD_GATEWAY_URL": sandbox.gateway_url,
        "POLLY_DISCORD_TOKEN": sandbox.fixture.bot.token,
        "POLLY_SECRET_KEY": "deploy-test-secret-key-" + "k" * 32,
        "POLLY_DISCORD_CLIENT_SECRET": CLIENT_SECRET,
        "POLLY_TRUSTED_PROXIES": "127.0.0.1",
        "POLLY_BOT_METRICS_PORT": "0",
        "POLLY_LOG_LEVEL": "WARNING",
    }
    fixture = sandbox.fixture
    playground = guild_id(fixture, "Polly Playground")

    # The migrations first, as their own step: the tables exist before any server starts.
    said = await run_polly("db", "upgrade", env=env)
    assert said == f"Database at {postgres_server.url(database)} is at the newest revision.\n"
    connection = await asyncpg.connect(
        host="127.0.0.1", port=postgres_server.port, user="polly", database=database
    )
    try:
        assert await connection.fetchval("SELECT count(*) FROM alembic_version") == 1
    finally:
        await connection.close()
    made = await run_polly(
        "keys", "create", "--json", "--guild", str(playground),
        "--scope", "roles:read", "--scope", "polls:read", "--scope", "polls:write", env=env,
    )  # fmt: skip
    key = json.loads(made)["token"]
    auth = {"Authorization": f"Bearer {key}"}
    polly = (sys.executable, "-m", "app")

    async with (
        announced(*polly, "api", "--port", "0", env=env) as first,
        announced(*polly, "api", "--port", "0", env=env) as second,
        announced(*polly, "bot", env=env, line=r"metrics on http://"),
        nginx(tmp_path, [first.url.removeprefix("http://"), second.url.removeprefix("http://")]) as proxy,
        httpx.AsyncClient(timeout=20, headers=auth) as client,
    ):
        replicas = [first.url, second.url]

        # Queries through the proxy, answered by both replicas.
        roles = {"query": f'query Roles {{ guildRoles(guildId: "{playground}") {{ id name }} }}'}
        for _ in range(20):
            answer = await client.post(f"{proxy}/graphql", json=roles)
            assert answer.status_code == 200 and "errors" not in answer.json(), answer.text
            assert {"id": str(playground), "name": "@everyone"} in answer.json()["data"]["guildRoles"]
        served = [await requests_by_operation(client, replica, "Roles") for replica in replicas]
        assert sum(served) == 20 and all(served), served
        # The replicas see the address the client asked for (Host, port included, and scheme):
        # what they build the login callback from when POLLY_PUBLIC_URL is not set.
        login = await client.get(f"{proxy}/auth/login")
        assert login.status_code == 302, login.text
        callback = parse_qs(urlsplit(login.headers["location"]).query)["redirect_uri"]
        assert callback == [f"{proxy}/auth/callback"]
        # Metrics stay inside: Prometheus scrapes each replica, the proxy does not serve them.
        assert (await client.get(f"{proxy}/metrics")).status_code == 404

        # A WebSocket subscription on each replica (nginx takes turns) and a server-sent event
        # stream, all through the proxy: one role change reaches all three.
        redis = aioredis.Redis.from_url(redis_url)
        changes = {"query": CHANGES, "variables": {"g": str(playground)}}
        try:
            async with (
                subscription(proxy, key, playground) as one,
                subscription(proxy, key, playground) as other,
                client.stream(
                    "POST", f"{proxy}/graphql", json=changes, headers={"Accept": "text/event-stream"}
                ) as stream,
                httpx.AsyncClient(base_url=sandbox.url, timeout=20) as control,
            ):
                assert stream.status_code == 200
                assert stream.headers["content-type"].startswith("text/event-stream")

                async def held_everywhere() -> bool:
                    # One Redis subscription per guild per replica: the events reach each.
                    numbers = await redis.pubsub_numsub(f"guild_events:{playground}")
                    sockets = [await subscriptions(client, r, "graphql-transport-ws") for r in replicas]
                    streams = [await subscriptions(client, r, "sse") for r in replicas]
                    return bool(numbers and numbers[0][1] >= 2) and sockets == [1, 1] and sum(streams) == 1

                await wait_until(held_everywhere, within=20, interval=0.05)
                role = role_id(fixture, "Polly Playground", "Event Pings")
                renames = iter(range(1000))
                renamed_event: dict[str, Any] = {}

                async def renamed() -> bool:
                    # Until the bot has its gateway session a change is not announced (and its
                    # start may announce a GUILD_RESYNCED first): change again until one is.
                    changed = await control.patch(
                        f"/_sandbox/guilds/{playground}/roles/{role}",
                        json={"name": f"Deploy {next(renames)}"},
                    )
                    changed.raise_for_status()
                    with contextlib.suppress(TimeoutError):
                        while not renamed_event:
                            change = await next_change(one, within=1)
                            if change["kind"] == "ROLE_UPDATED" and change["roleId"] == str(role):
                                renamed_event.update(change)
                    return bool(renamed_event)

                await wait_until(renamed, within=20, interval=0)

                async def on_the_other_replica() -> bool:
                    return await next_change(other, within=20) == renamed_event

                await wait_until(on_the_other_replica, within=20, interval=0)
                lines = stream.aiter_lines()

                async def streamed() -> bool:
                    line = await anext(lines)
                    if not line.startswith("data:"):
                        return False
                    return bool(json.loads(line[5:])["data"]["guildRolesChanged"] == renamed_event)

                await wait_until(streamed, within=20, interval=0)
        finally:
            await redis.aclose()

        # A poll made on one replica is read on the other, and the bot posts it in Discord.
        create = {
            "query": "mutation($input: CreatePollInput!) { createPoll(input: $input) { id status } }",
            "variables": {
                "input": {
                    "guildId": str(playground),
                    "channelId": str(channel_id(fixture, "Polly Playground", "polls")),
                    "name": "Deploy",
                    "question": "Behind the proxy?",
                    "options": [{"text": "Yes"}, {"text": "No"}],
                    "closesAt": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
                }
            },
        }
        created = (await client.post(f"{first.url}/graphql", json=create)).json()
        assert "errors" not in created, created
        poll_id = created["data"]["createPoll"]["id"]
        read = {"query": f'{{ poll(id: "{poll_id}") {{ status opensAt messageId channelId }} }}'}
        poll: dict[str, Any] = {}

        async def posted() -> bool:
            answer = (await client.post(f"{second.url}/graphql", json=read)).json()
            assert "errors" not in answer, answer
            poll.update(answer["data"]["poll"])
            return bool(poll["status"] == "OPEN" and poll["messageId"])

        # Not faster than the rate limit refills (20 a second): reads must not be refused.
        await wait_until(posted, within=20, interval=0.25)
        opened = datetime.fromisoformat(poll["opensAt"])
        assert abs(datetime.now(UTC) - opened) < timedelta(seconds=60)
        messages = sandbox.state.guilds[playground].messages[int(poll["channelId"])]
        message = messages[int(poll["messageId"])]
        assert message.author_id == fixture.bot.id
