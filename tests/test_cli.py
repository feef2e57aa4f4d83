"""The ``polly`` command as a user runs it: a real process, real ports, real signals."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from app.sandbox.fixture import Fixture
from app.sandbox.server import Sandbox
from tests.conftest import REPO, TEST_SECRET_KEY, wait_until
from tests.processes import announced

POLLY = [sys.executable, "-m", "app"]


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*POLLY, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def test_help_lists_the_subcommands() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "sandbox" in result.stdout
    console_script = Path(sys.executable).with_name("polly")
    if console_script.exists():
        assert "sandbox" in subprocess.run([console_script, "--help"], capture_output=True, text=True).stdout


def test_a_bad_setting_stops_with_a_sentence_naming_it() -> None:
    result = run("api", env={"POLLY_LOG_LEVEL": "LOUD", "POLLY_DISCORD_TOKEN": "x"})
    assert result.returncode == 2
    assert "POLLY_LOG_LEVEL" in result.stderr
    assert "Traceback" not in result.stderr
    # The sandbox reads no POLLY_* setting, so a wrong one does not stop it.
    assert run("sandbox", "--dump-fixture", env={"POLLY_LOG_LEVEL": "LOUD"}).returncode == 0


BOT = {"id": "1", "username": "b", "token": "t"}
APPLICATION = {"id": "1", "name": "a"}
NO_EVERYONE = {"id": "5", "name": "No everyone", "owner_id": "1", "roles": []}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "is not valid JSON"),
        (json.dumps({"bot": BOT, "application": APPLICATION, "guilds": [NO_EVERYONE]}), "no @everyone role"),
        (json.dumps({"bot": {**BOT, "id": "x"}, "application": APPLICATION}), "bot.id"),
    ],
)
def test_a_bad_fixture_stops_the_sandbox_naming_file_and_problem(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)
    # Port 0: should the fixture load after all, the sandbox would serve, and not on a port in use.
    result = run("sandbox", "--fixture", str(path), "--port", "0")
    assert result.returncode == 2
    assert str(path) in result.stderr and problem in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_fixture_file_is_named(tmp_path: Path) -> None:
    result = run("sandbox", "--fixture", str(tmp_path / "absent.json"))
    assert result.returncode == 2 and "absent.json" in result.stderr


def test_dumped_fixtures_load_back(tmp_path: Path) -> None:
    dumped = run("sandbox", "--dump-fixture")
    assert dumped.returncode == 0
    path = tmp_path / "default.json"
    path.write_text(dumped.stdout)
    fixture = Fixture.model_validate_json(path.read_text())
    assert len(fixture.guilds) == 5

    generated = run("sandbox", "--guilds", "1000", "--dump-fixture")
    assert len(json.loads(generated.stdout)["guilds"]) == 1000


async def test_the_sandbox_serves_until_sigterm(tmp_path: Path) -> None:
    async with announced(*POLLY, "sandbox", "--host", "127.0.0.1", "--port", "0", "--guilds", "3") as sandbox:
        # The banner, printed once listening, names the port the system picked.
        url = sandbox.url
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url) and not url.endswith(":0")
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/_sandbox/fixture") as response:
                fixture = await response.json()
            assert len(fixture["guilds"]) == 3
            headers = {"Authorization": f"Bot {fixture['bot']['token']}"}
            async with session.get(f"{url}/api/v10/users/@me", headers=headers) as response:
                assert (await response.json())["id"] == fixture["bot"]["id"]
        sandbox.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(sandbox.process.wait(), timeout=10) == 0


def test_api_without_a_token_stops_with_a_sentence() -> None:
    result = run("api", env={"POLLY_DISCORD_TOKEN": ""})
    assert result.returncode == 2
    assert "POLLY_DISCORD_TOKEN is not set" in result.stderr and "Traceback" not in result.stderr


def test_api_with_a_wrong_setting_names_it() -> None:
    result = run("api", env={"POLLY_DISCORD_TOKEN": "x", "POLLY_REDIS_URL": "http://localhost"})
    assert result.returncode == 2
    assert "POLLY_REDIS_URL" in result.stderr and "Traceback" not in result.stderr
    result = run("api", env={"POLLY_DISCORD_TOKEN": "x", "POLLY_ROLE_CACHE_TTL": "-5"})
    assert result.returncode == 2 and "POLLY_ROLE_CACHE_TTL" in result.stderr


def test_api_refuses_to_start_without_a_secret_key() -> None:
    for secret in ("", "too-short"):
        result = run("api", env={"POLLY_DISCORD_TOKEN": "x", "POLLY_SECRET_KEY": secret})
        assert result.returncode == 2
        assert "POLLY_SECRET_KEY must be set" in result.stderr and "Traceback" not in result.stderr


async def test_api_with_a_token_discord_refuses_stops(sandbox: Sandbox) -> None:
    env = {
        "POLLY_DISCORD_TOKEN": "not-the-token",
        "POLLY_DISCORD_API_URL": sandbox.api_url,
        "POLLY_SECRET_KEY": TEST_SECRET_KEY,
    }
    process = await asyncio.create_subprocess_exec(
        *POLLY,
        "api",
        "--port",
        "0",
        cwd=REPO,
        env={**os.environ, **env},
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 2
    assert b"refused POLLY_DISCORD_TOKEN" in stderr and b"Traceback" not in stderr


@pytest.mark.parametrize("redis", ["server", "fakeredis"])
async def test_polly_demo_serves_the_whole_stack_until_sigterm(redis: str) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("POLLY_")}
    # The suite may run beside other work: a Redis answer later than the 0.5 s default is then
    # a real event (worth its warning), not the false alarm this test looks for.
    env["POLLY_REDIS_TIMEOUT"] = "10"
    options = ("--port", "0", "--sandbox-port", "0", "--redis", redis)
    churn = ("--churn", "--churn-every", "0.2", "--heartbeat-interval", "500")
    async with announced(*POLLY, "demo", *options, *churn, env=env, line="Press Ctrl\\+C") as demo:
        banner = demo.banner
        # The banner names the ports the system picked, not the 0s asked for.
        api_url = re.search(r"the live role dropdown +(http://127\.0\.0\.1:\d+)/\n", banner)
        sandbox_url = re.search(r"Discord sandbox +(http://127\.0\.0\.1:\d+)/_sandbox/fixture\n", banner)
        assert api_url is not None and sandbox_url is not None, banner
        api, sandbox = api_url[1], sandbox_url[1]
        assert not api.endswith(":0") and not sandbox.endswith(":0") and api != sandbox
        assert f"GraphQL (GraphiQL)       {api}/graphql" in banner
        assert ("fakeredis" in banner) == (redis == "fakeredis")
        # With a real Redis, the API is two worker processes (as polly api --workers 2 runs).
        workers = "API                      in this process" if redis == "fakeredis" else "2 worker processes"
        assert workers in banner, banner
        key = re.search(r"Authorization: Bearer (polly_\S+)", banner)
        assert key is not None
        auth = {"Authorization": f"Bearer {key[1]}"}
        async with aiohttp.ClientSession(headers=auth) as session:

            async def ask(query: str) -> dict[str, Any]:
                async with session.post(f"{api}/graphql", json={"query": query}) as response:
                    body: dict[str, Any] = await response.json()
                    return body

            async with session.get(f"{api}/") as page:
                assert page.status == 200 and "graphql-ws" in await page.text()

            async def all_guilds() -> bool:
                return len((await ask("{ botGuilds { name } }"))["data"]["botGuilds"]) == 4

            await wait_until(all_guilds, within=15)
            # --churn: the playground's roles change on their own.
            async with session.get(f"{sandbox}/_sandbox/fixture") as response:
                playground = (await response.json())["guilds"][0]["id"]
            names = f'{{ guildRoles(guildId: "{playground}") {{ name }} }}'
            before = await ask(names)

            async def changed() -> bool:
                return await ask(names) != before

            await wait_until(changed, within=10)

            async def heartbeats() -> int:
                async with session.get(f"{sandbox}/_sandbox/gateway/sessions") as response:
                    return min(s["heartbeats"] for s in (await response.json())["sessions"])

            async def many_heartbeats() -> bool:
                await ask("{ botGuilds { name } }")  # the API stays busy meanwhile
                return await heartbeats() >= 6

            await wait_until(many_heartbeats, within=15)
        demo.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(demo.process.wait(), timeout=15) == 0
        log = await asyncio.wait_for(demo.stderr, timeout=15)
        # A newcomer reads any warning as a fault: the demo has none to show.
        assert not re.search(rb"WARNING|ERROR|Traceback", log), log.decode()
