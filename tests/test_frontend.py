"""The front-end stub in a real browser: Debian's Chromium, driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect

from app.api.app import create_app, server_config
from app.listening import ListeningServer
from app.sandbox.builtin import CLIENT_SECRET
from app.sandbox.fixture import Fixture
from app.sandbox.server import Sandbox
from app.settings import Settings
from tests.conftest import (
    REPO,
    TEST_SECRET_KEY,
    RunningApi,
    RunningBot,
    SandboxHttp,
    create_key,
    guild_id,
    role_id,
    stop_api,
)

pytestmark = pytest.mark.timeout(120)

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    path = os.environ.get("POLLY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        pytest.fail("Debian's chromium is needed (apt-get install chromium; ./scripts/test installs it).")
    if not (REPO / "frontend-stub/node_modules/graphql-ws/umd/graphql-ws.min.js").is_file():
        pytest.fail("The stub's graphql-ws client is missing: npm ci --prefix frontend-stub (scripts do it).")
    return path


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


async def open_stub(browser: Browser, api: RunningApi, user: str = "alice") -> Page:
    """The stub, logged in with Discord (the sandbox's consent page) as ``user``."""
    page = await browser.new_page()
    await page.goto(f"{api.url}/")
    await expect(page.locator("#connection")).to_have_text("signed out", timeout=10_000)
    await page.get_by_role("link", name="Log in with Discord").click()
    await page.get_by_role("link", name=f"(@{user})").click()
    await expect(page.locator("#viewer")).to_have_text(user.capitalize(), timeout=10_000)
    await expect(page.locator("#connection")).to_have_text("live", timeout=10_000)
    await expect(page.locator("#role option").first).to_be_attached(timeout=10_000)
    # Marks this page load: a reload would lose it.
    await page.evaluate("window.loadedOnce = true")
    return page


async def role_names(page: Page) -> list[str]:
    return await page.locator("#role option").all_text_contents()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening socket the test holds while it stops and starts the API on it: the page
    reconnects to the address it was loaded from, which no other process can take meanwhile
    (a port let go and bound again could be). While the API is down, the kernel queues
    connections instead of refusing them; the API accepts them once back."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock


async def start_api_on(
    listener: socket.socket, sandbox: Sandbox, redis_url: str, data_dir: Path
) -> RunningApi:
    """The API as ``start_api`` (tests/conftest.py) serves it, but on ``listener``."""
    settings = Settings(
        discord_api_url=sandbox.api_url,
        discord_gateway_url=sandbox.gateway_url,
        discord_token=sandbox.fixture.bot.token,
        redis_url=redis_url,
        data_dir=data_dir,
        secret_key=TEST_SECRET_KEY,
        discord_client_secret=CLIENT_SECRET,
    )
    app = create_app(settings)
    server = ListeningServer(server_config(app, settings, host="127.0.0.1", port=0, log_level="warning"))
    # A duplicate, since uvicorn closes the sockets it served on when it stops.
    task = await server.serve_in_task(sockets=[listener.dup()])
    key = await create_key(settings, [guild.id for guild in sandbox.fixture.guilds], ["roles:read"])
    running = RunningApi([(app, server)], sandbox, settings, key)
    running.tasks = [task]  # type: ignore[attr-defined]  # what stop_api awaits
    return running


# Its page's subscription against one API worker and against two sharing the port.
@pytest.mark.workers_1_and_2
async def test_the_dropdown_follows_a_rename_without_a_reload(
    bot_factory: Callable[[str], Awaitable[RunningBot]],
    api: RunningApi,
    redis_url: str,
    http: SandboxHttp,
    browser: Browser,
    fixture: Fixture,
) -> None:
    await bot_factory(redis_url)
    page = await open_stub(browser, api)
    # Alice's guilds that the bot is in; not Polly HQ or Big Guild, where she is no member.
    assert await page.locator("#guild option").all_text_contents() == ["Polly Playground", "Quiet Corner"]
    assert "Poll Voters" in await role_names(page)

    playground = guild_id(fixture, "Polly Playground")
    voters = role_id(fixture, "Polly Playground", "Poll Voters")
    response, _ = await http.call(
        "PATCH", f"/guilds/{playground}/roles/{voters}", json={"name": "Ballot Casters"}
    )
    assert response.status == 200
    await expect(page.locator("#role")).to_contain_text("Ballot Casters", timeout=5_000)
    assert "Poll Voters" not in await role_names(page)
    assert await page.evaluate("window.loadedOnce") is True

    # Another guild, another list.
    await page.select_option("#guild", label="Quiet Corner")
    await expect(page.locator("#role option")).to_have_text(["Helpers", "Artists"], timeout=5_000)


# Not workers_1_and_2: the API is stopped and started again on the test's own listening socket.
async def test_after_a_drop_the_page_reconnects_and_replays_what_it_missed(
    bot_factory: Callable[[str], Awaitable[RunningBot]],
    sandbox: Sandbox,
    redis_url: str,
    http: SandboxHttp,
    browser: Browser,
    fixture: Fixture,
    tmp_path: Path,
    listener: socket.socket,
) -> None:
    await bot_factory(redis_url)
    api = await start_api_on(listener, sandbox, redis_url, tmp_path)
    try:
        page = await open_stub(browser, api)
        playground = guild_id(fixture, "Polly Playground")
        events = role_id(fixture, "Polly Playground", "Event Pings")
        # A change while connected gives the page an event id to resume from.
        await http.call("PATCH", f"/guilds/{playground}/roles/{events}", json={"name": "Event Pings!"})
        await expect(page.locator("#role")).to_contain_text("Event Pings!", timeout=5_000)

        await stop_api(api)
        await expect(page.locator("#connection")).to_have_text("reconnecting", timeout=10_000)
        # Missed while the API is down (the bot still writes the event to the stream).
        await http.call("PATCH", f"/guilds/{playground}/roles/{events}", json={"name": "Party Pings"})

        api = await start_api_on(listener, sandbox, redis_url, tmp_path)
        await expect(page.locator("#connection")).to_have_text("live", timeout=15_000)
        await expect(page.locator("#role")).to_contain_text("Party Pings", timeout=5_000)
        assert await page.evaluate("window.loadedOnce") is True
        changes = await page.locator("#events li").all_text_contents()
        # Newest first: the missed change (replayed), the one seen live, then the first list.
        assert [change.split()[0] for change in changes] == ["ROLE_UPDATED", "ROLE_UPDATED", "GUILD_RESYNCED"]
    finally:
        await stop_api(api)


# Not workers_1_and_2: the API is stopped and started again on the test's own listening socket.
async def test_a_drop_before_any_change_still_ends_with_the_current_list(
    bot_factory: Callable[[str], Awaitable[RunningBot]],
    sandbox: Sandbox,
    redis_url: str,
    http: SandboxHttp,
    browser: Browser,
    fixture: Fixture,
    tmp_path: Path,
    listener: socket.socket,
) -> None:
    await bot_factory(redis_url)
    api = await start_api_on(listener, sandbox, redis_url, tmp_path)
    try:
        page = await open_stub(browser, api)
        await stop_api(api)
        await expect(page.locator("#connection")).to_have_text("reconnecting", timeout=10_000)
        playground = guild_id(fixture, "Polly Playground")
        quiet = role_id(fixture, "Polly Playground", "Quiet Folk")
        await http.call("PATCH", f"/guilds/{playground}/roles/{quiet}", json={"name": "Loud Folk"})
        api = await start_api_on(listener, sandbox, redis_url, tmp_path)
        await expect(page.locator("#connection")).to_have_text("live", timeout=15_000)
        await expect(page.locator("#role")).to_contain_text("Loud Folk", timeout=5_000)
        assert await page.evaluate("window.loadedOnce") is True
    finally:
        await stop_api(api)
