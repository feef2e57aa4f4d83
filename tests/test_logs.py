"""Logs an operator can search: ``POLLY_LOG_FORMAT=json`` gives one line per request with the
request id on every line that request causes, the bot's lines say shard, guild and event, and
no secret reaches a line, at DEBUG too (everything the process logs: ours, discord.py's,
aiohttp's, uvicorn's, SQLAlchemy's)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.access.cookies import SESSION_COOKIE
from app.sandbox.builtin import CLIENT_SECRET
from app.settings import Settings, secrets_of
from app.storage.api_keys import parse_token
from app.telemetry import logs
from tests.conftest import RunningApi, SandboxHttp, guild_id, role_id, wait_until
from tests.poll_stack import Polls
from tests.test_access_matrix import log_in
from tests.test_buttons import click

pytestmark = pytest.mark.asyncio


class Captured:
    """Every line the process logs, formatted as an operator's log store would get it."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)

    def prepare(self, form: logs.LogFormat, settings: Settings) -> None:
        logs.prepare(self.handler, form, secrets=secrets_of(settings))

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.startswith("{")]


@pytest.fixture
def captured() -> Iterator[Captured]:
    capture = Captured()
    root = logging.getLogger()
    level = root.level
    root.addHandler(capture.handler)
    root.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture.handler)
        root.setLevel(level)


async def test_json_request_line_and_its_id_on_every_line_it_causes(
    api_factory: Any, captured: Captured
) -> None:
    # A cache of its own: the request must fetch the guild from Discord, and log doing so.
    api: RunningApi = await api_factory(cache_prefix="logs-json:")
    captured.prepare("json", api.settings)
    playground = guild_id(api.sandbox.fixture, "Polly Playground")
    query = f'query Roles {{ guildRoles(guildId: "{playground}") {{ id }} }}'
    answer = await api.client.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {api.key}"}
    )
    assert answer.status_code == 200 and "errors" not in answer.json()
    request_id = answer.headers["X-Request-Id"]

    lines = captured.lines()
    request_lines = [line for line in lines if line["logger"] == "polly.requests"]
    mine = [line for line in request_lines if line.get("request_id") == request_id]
    assert len(mine) == 1, request_lines
    key_id = parse_token(api.key)
    assert key_id is not None
    assert {name: mine[0][name] for name in ("method", "path", "operation", "status", "principal_kind")} == {
        "method": "POST",
        "path": "/graphql",
        "operation": "Roles",
        "status": 200,
        "principal_kind": "API_KEY",
    }
    assert mine[0]["principal_id"] == key_id[0]
    assert mine[0]["cache"] in ("stored", "miss") and mine[0]["duration_ms"] > 0
    assert mine[0]["level"] == "INFO" and mine[0]["time"].endswith("+00:00")

    # What the request caused: the fill, and discord.py's own lines for its three calls.
    fetching = [line for line in lines if line["message"].startswith(f"Fetching guild {playground}")]
    calls = [
        line for line in lines if line["logger"] == "discord.http" and str(playground) in line["message"]
    ]
    assert fetching and calls
    assert {line.get("request_id") for line in [*fetching, *calls]} == {request_id}

    # A second request has its own id; the cached answer's line says so.
    again = await api.client.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {api.key}"}
    )
    second = [line for line in captured.lines() if line.get("request_id") == again.headers["X-Request-Id"]]
    assert len(second) == 1 and second[0]["cache"] == "hit" and second[0]["principal_id"] == key_id[0]


async def test_text_stays_the_default_and_carries_the_request_id(
    api_factory: Any, captured: Captured
) -> None:
    api: RunningApi = await api_factory()
    captured.prepare("text", api.settings)
    answer = await api.client.post("/graphql", json={"query": "{ __typename }"})
    request_id = answer.headers["X-Request-Id"]
    line = next(line for line in captured.text.splitlines() if "polly.requests" in line)
    assert line.endswith(f"[request_id={request_id}]") and "POST /graphql 200" in line
    assert not line.startswith("{")
    assert Settings().log_format == "text"


async def test_the_bots_lines_say_shard_guild_and_event(
    bot_factory: Any, redis_url: str, http: SandboxHttp, captured: Captured
) -> None:
    bot = await bot_factory(redis_url)
    captured.prepare("json", bot.settings)
    fixture = bot.sandbox.fixture
    playground = guild_id(fixture, "Polly Playground")
    role = role_id(fixture, "Polly Playground", "Event Pings")
    await http.control("PATCH", f"/_sandbox/guilds/{playground}/roles/{role}", {"name": "Logged Pings"})

    def written() -> list[dict[str, Any]]:
        return [line for line in captured.lines() if line["message"].startswith(f"Guild {playground}: ROLE_")]

    async def logged() -> bool:
        return bool(written())

    await wait_until(logged, within=10)
    line = written()[0]
    assert (line["shard"], line["guild"], line["event"]) == (0, playground, "GUILD_ROLE_UPDATE")


async def _oauth_tokens(data_dir: Path) -> list[str]:
    def read() -> list[str]:
        with sqlite3.connect(data_dir / "polly.db") as connection:
            rows = connection.execute("SELECT access_token, refresh_token FROM login_sessions").fetchall()
        return [token for row in rows for token in row if token]

    return await asyncio.to_thread(read)


def secret_of(token: str) -> str:
    parsed = parse_token(token)
    if parsed is None:
        raise AssertionError(f"not an API key: {token[:10]}...")
    return parsed[1]


async def test_no_secret_reaches_a_log_line_at_debug(stack: Polls, captured: Captured) -> None:
    api = stack.api
    captured.prepare("json", api.settings)
    await stack.start_bot()  # its login (the bot token) and gateway IDENTIFY happen while captured

    carol = await log_in(api, "carol")
    try:
        cookie = carol.cookies[SESSION_COOKIE]
        seen = await carol.post("/graphql", json={"query": "{ viewer { id guilds { id } } }"})
        assert seen.status_code == 200 and "errors" not in seen.json(), seen.text
        key = stack.auth["Authorization"].removeprefix("Bearer ")
        oauth_tokens = await _oauth_tokens(api.settings.data_dir)
        poll = await stack.create()
        poll = await stack.until_status(poll["id"], "OPEN")
        answer = await click(stack, {**poll, "messageId": poll["messageId"]}, "carol", 0)
        interaction = api.sandbox.state.interactions.get(int(answer["interaction_id"]))
        assert interaction is not None and interaction.is_answered
        # A refused key and a forged cookie, as callers get them wrong.
        async with httpx.AsyncClient(base_url=api.url) as stranger:
            await stranger.post("/graphql", json={"query": "{ viewer { id } }"},
                                headers={"Authorization": f"Bearer {key[:-4]}xxxx"})  # fmt: skip
            await stranger.post("/graphql", json={"query": "{ viewer { id } }"},
                                headers={"Cookie": f"{SESSION_COOKIE}={cookie[:-3]}abc"})  # fmt: skip
        await carol.post("/auth/logout", headers={"Origin": api.url})
    finally:
        await carol.aclose()

    secrets = {
        "the bot token": api.settings.discord_token.get_secret_value() if api.settings.discord_token else "",
        "POLLY_SECRET_KEY": api.settings.secret_key.get_secret_value() if api.settings.secret_key else "",
        "the OAuth client secret": CLIENT_SECRET,
        "an API key": key,
        # Its secret's last 20 characters, as parsed: the secret may itself hold a "_" (the
        # token's last "_"-separated part could be a word as short as "in").
        "an API key's secret": secret_of(key)[-20:],
        "the test's other API key": api.key,
        "a session cookie": cookie,
        "an interaction token": interaction.token,
    }
    for number, token in enumerate(oauth_tokens):
        secrets[f"OAuth token {number}"] = token
    assert len(secrets) >= 10, "the login left no OAuth tokens to look for"
    text = captured.text
    assert len(text.splitlines()) > 200, "DEBUG logging captured too little to prove anything"
    assert "discord.http" in text and "polly.requests" in text
    leaked = {
        what: [line[:300] for line in text.splitlines() if secret in line][:2]
        for what, secret in secrets.items()
        if secret and secret in text
    }
    assert leaked == {}, f"{leaked} reached the log"
