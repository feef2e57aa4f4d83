"""The shipped alerting and dashboard against a real Prometheus (Debian's) scraping a running
``polly api`` and ``polly bot``: every metric a rule or a panel reads exists and has data after
a short workload, the rules load and evaluate, and ``promtool`` accepts the shipped files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import websockets
import yaml
from prometheus_client import Counter, Gauge, Histogram

from app.sandbox.builtin import default_fixture
from app.sandbox.server import Sandbox
from tests.conftest import channel_id, guild_id, role_id, wait_until
from tests.processes import Announced, announced

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None or PROMTOOL is None,
    reason="Debian's prometheus package is not installed (scripts/test installs it)",
)

# Every family issue 16 names, as /metrics must show it after the workload.
API_FAMILIES = (
    "polly_requests_total",
    "polly_request_duration_seconds",
    "polly_response_cache_total",
    "polly_role_cache_reads_total",
    "polly_role_cache_writes_total",
    "polly_stale_answers_total",
    "polly_degraded_answers_total",
    "polly_discord_requests_total",
    "polly_discord_rate_limited_total",
    "polly_discord_rate_limit_wait_seconds_total",
    "polly_fills_total",
    "polly_fill_waits_total",
    "polly_open_connections",
    "polly_subscriptions",
    "polly_delivery_seconds",
    "polly_votes_total",
    "polly_database_errors_total",
    "polly_redis_errors_total",
    "polly_redis_up",
)
BOT_FAMILIES = (
    "polly_gateway_latency_seconds",
    "polly_gateway_connected",
    "polly_gateway_events_total",
    "polly_gateway_resyncs_total",
    "polly_role_cache_writes_total",
    "polly_polls",
    "polly_votes_total",
    "polly_scheduler_lag_seconds",
    "polly_scheduler_retries_total",
    "polly_discord_requests_total",
)
METRIC = re.compile(r"(?<![\w:])(polly_[a-z0-9_]+|up)(?=\s*[{\[)\s])")


def used_metrics() -> dict[str, set[str]]:
    """Metric name -> where it is used (rule or panel names)."""
    used: dict[str, set[str]] = {}
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            for name in METRIC.findall(rule["expr"] + " "):
                used.setdefault(name, set()).add(f"alert {rule['alert']}")
    dashboard = json.loads((DEPLOY / "grafana" / "polly.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for name in METRIC.findall(target["expr"] + " "):
                used.setdefault(name, set()).add(f"panel {panel['title']!r}")
    return used


def test_promtool_accepts_the_shipped_config_and_rules() -> None:
    assert PROMTOOL is not None
    rules = subprocess.run(
        [PROMTOOL, "check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")],
        capture_output=True,
        text=True,
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = subprocess.run(
        [PROMTOOL, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert config.returncode == 0, config.stdout + config.stderr


def test_every_rule_and_panel_reads_only_metrics_polly_defines() -> None:
    """A typo in a rule or panel is a metric nobody exports: caught here without Prometheus."""
    from app.telemetry import metrics

    defined = {"up"}
    for value in vars(metrics).values():
        if isinstance(value, Counter | Gauge | Histogram):
            for family in value.describe():
                name = family.name
                defined |= {name, f"{name}_total", f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    unknown = {name: where for name, where in used_metrics().items() if name not in defined}
    assert not unknown, unknown


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest_asyncio.fixture
async def quick_sandbox() -> AsyncIterator[Sandbox]:
    """Heartbeats every second, so the bot has a gateway latency within the test."""
    running = Sandbox(default_fixture(), heartbeat_interval_ms=1000, heartbeat_ack_delay_ms=5)
    await running.start("127.0.0.1", 0)
    try:
        yield running
    finally:
        await running.stop()


def polly_env(sandbox: Sandbox, redis_url: str, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "POLLY_DISCORD_API_URL": sandbox.api_url,
        "POLLY_DISCORD_GATEWAY_URL": sandbox.gateway_url,
        "POLLY_DISCORD_TOKEN": sandbox.fixture.bot.token,
        "POLLY_REDIS_URL": redis_url,
        "POLLY_SECRET_KEY": "s" * 40,
        "POLLY_DATA_DIR": str(data_dir),
        "POLLY_BOT_METRICS_PORT": "0",
        "POLLY_SCHEDULER_INTERVAL": "0.2",
        "POLLY_LOG_LEVEL": "WARNING",
    }


@contextlib.asynccontextmanager
async def prometheus(api: str, bot: str, directory: Path) -> AsyncIterator[str]:
    """A real Prometheus scraping ``api`` and ``bot`` every second with the shipped rules."""
    assert PROMETHEUS is not None
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(DEPLOY / "prometheus" / "alerts.yml")],
        "scrape_configs": [
            {"job_name": "polly-api", "static_configs": [{"targets": [api]}]},
            {"job_name": "polly-bot", "static_configs": [{"targets": [bot]}]},
        ],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()  # Prometheus does not report a port it picked itself
    log = directory / "prometheus.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            PROMETHEUS,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            stdout=output,
            stderr=output,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=2) as client:

            async def ready() -> bool:
                if process.returncode is not None:
                    raise AssertionError(f"Prometheus exited: {log.read_text()}")
                try:
                    return (await client.get("/-/ready")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(ready, within=30, interval=0.2)
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def workload(api: str, sandbox: Sandbox, key: str) -> None:
    """Queries (a miss, then hits), a subscription that sees a role change, a poll the bot
    opens, and a button vote on it."""
    fixture = sandbox.fixture
    playground = guild_id(fixture, "Polly Playground")
    headers = {"Authorization": f"Bearer {key}"}
    query = {"query": f'query Roles {{ guildRoles(guildId: "{playground}") {{ id name }} }}'}
    async with httpx.AsyncClient(base_url=api, timeout=10) as client:
        for _ in range(3):
            answer = await client.post("/graphql", json=query, headers=headers)
            assert answer.status_code == 200 and "errors" not in answer.json(), answer.text

        socket_url = api.replace("http", "ws") + "/graphql"
        async with websockets.connect(
            socket_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
        ) as ws:
            await ws.send(
                json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}})
            )
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            subscription = f'subscription {{ guildRolesChanged(guildId: "{playground}") {{ kind }} }}'
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": subscription}}))
            role = role_id(fixture, "Polly Playground", "Event Pings")
            renames = iter(range(1000))
            async with httpx.AsyncClient(base_url=sandbox.url) as control:

                async def renamed() -> bool:
                    changed = await control.patch(
                        f"/_sandbox/guilds/{playground}/roles/{role}", json={"name": f"Pings {next(renames)}"}
                    )
                    changed.raise_for_status()
                    try:
                        async with asyncio.timeout(1):
                            message = json.loads(await ws.recv())
                    except TimeoutError:
                        return False  # subscribed after the change: change it again
                    return bool(message["type"] == "next")

                await wait_until(renamed, within=15, interval=0)

        now = datetime.now(UTC)
        create = {
            "query": "mutation($input: CreatePollInput!) { createPoll(input: $input) { id } }",
            "variables": {
                "input": {
                    "guildId": str(playground),
                    "channelId": str(channel_id(fixture, "Polly Playground", "polls")),
                    "name": "Metrics",
                    "question": "Scraped?",
                    "options": [{"text": "Yes"}, {"text": "No"}],
                    "closesAt": (now + timedelta(hours=1)).isoformat(),
                }
            },
        }
        created = (await client.post("/graphql", json=create, headers=headers)).json()
        poll_id = created["data"]["createPoll"]["id"]
        read = {"query": f'{{ poll(id: "{poll_id}") {{ status messageId channelId }} }}'}
        poll: dict[str, Any] = {}

        async def opened() -> bool:
            poll.update((await client.post("/graphql", json=read, headers=headers)).json()["data"]["poll"])
            return bool(poll["messageId"])

        await wait_until(opened, within=15)
        carol = next(str(u.id) for u in fixture.users if u.username == "carol")
        async with httpx.AsyncClient(base_url=sandbox.url) as control:
            click = await control.post(
                "/_sandbox/interactions/click",
                json={
                    "user_id": carol,
                    "channel_id": poll["channelId"],
                    "message_id": poll["messageId"],
                    "custom_id": f"poll:{poll_id}:0",
                },
            )
            click.raise_for_status()


async def series(prom: httpx.AsyncClient, name: str) -> list[dict[str, Any]]:
    answer = await prom.get("/api/v1/series", params={"match[]": name})
    answer.raise_for_status()
    found: list[dict[str, Any]] = answer.json()["data"]
    return found


async def test_prometheus_scrapes_every_metric_the_alerts_and_dashboard_use(
    quick_sandbox: Sandbox, redis_url: str, tmp_path: Path
) -> None:
    sandbox = quick_sandbox
    env = polly_env(sandbox, redis_url, tmp_path / "data")
    playground = str(guild_id(sandbox.fixture, "Polly Playground"))
    made = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "keys", "create", "--json", "--guild", playground,
        "--scope", "roles:read", "--scope", "polls:read", "--scope", "polls:write",
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    printed, _ = await made.communicate()
    assert made.returncode == 0
    key = json.loads(printed)["token"]
    async with (
        announced(sys.executable, "-m", "app", "api", "--port", "0", env=env) as api,
        announced(sys.executable, "-m", "app", "bot", env=env, line=r"metrics on http://") as bot,
    ):
        api_target = _target(api)
        bot_target = _target(bot)
        async with prometheus(api_target, bot_target, tmp_path) as prom_url:
            await workload(api.url, sandbox, key)
            wanted = used_metrics()
            async with httpx.AsyncClient(base_url=prom_url, timeout=10) as prom:
                missing: dict[str, set[str]] = dict(wanted)

                async def scraped() -> bool:
                    for name in list(missing):
                        if await series(prom, name):
                            del missing[name]
                    return not missing

                with contextlib.suppress(AssertionError):
                    await wait_until(scraped, within=30, interval=0.5)
                assert not missing, f"no data in Prometheus for {missing}"

                rules = (await prom.get("/api/v1/rules")).json()["data"]["groups"]
                evaluated = [rule for group in rules for rule in group["rules"]]
                assert len(evaluated) == sum(
                    len(g["rules"])
                    for g in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
                )
                assert all(rule["health"] != "err" for rule in evaluated), evaluated

            async with httpx.AsyncClient(timeout=10) as client:
                api_text = (await client.get(f"{api.url}/metrics")).text
                bot_text = (await client.get(f"http://{bot_target}/metrics")).text
            assert [name for name in API_FAMILIES if f"\n{name}" not in api_text] == []
            assert [name for name in BOT_FAMILIES if f"\n{name}" not in bot_text] == []
            assert re.search(r'polly_votes_total\{result="recorded",source="button"\} 1\.0', bot_text), (
                bot_text
            )
            assert re.search(r'polly_scheduler_lag_seconds_count\{action="open"\} [1-9]', bot_text)
            assert re.search(r'polly_requests_total\{operation="Roles",outcome="ok"\} 3\.0', api_text)
            assert re.search(r'polly_response_cache_total\{result="hit"\} [1-9]', api_text)
            assert re.search(r'polly_open_connections\{transport="tcp"\} [1-9]', api_text)
            assert re.search(r'polly_discord_requests_total\{method="POST",route="/channels/\{id\}/messages",'
                             r'status="200"\} 1\.0', bot_text), bot_text  # fmt: skip


def _target(process: Announced) -> str:
    found = re.search(r"https?://([^/\s]+)", process.banner)
    assert found is not None, process.banner
    return found[1]


async def test_processes_sharing_a_metrics_directory_are_scraped_as_one(
    quick_sandbox: Sandbox, redis_url: str, tmp_path: Path
) -> None:
    """POLLY_METRICS_DIR: whichever process a scrape reaches answers for all of them."""
    env = {**polly_env(quick_sandbox, redis_url, tmp_path / "data"), "POLLY_METRICS_DIR": str(tmp_path / "m")}
    ping = {"query": "query Ping { __typename }"}
    async with (
        announced(sys.executable, "-m", "app", "api", "--port", "0", env=env) as first,
        announced(sys.executable, "-m", "app", "api", "--port", "0", env=env) as second,
        httpx.AsyncClient(timeout=10) as client,
    ):
        for url, times in ((first.url, 3), (second.url, 2)):
            for _ in range(times):
                assert (await client.post(f"{url}/graphql", json=ping)).status_code == 200
        for url in (first.url, second.url):
            text = (await client.get(f"{url}/metrics")).text
            assert re.search(r'polly_requests_total\{operation="Ping",outcome="ok"\} 5\.0', text), text
