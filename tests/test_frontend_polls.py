"""The front-end stub as a poll tool, in Debian's Chromium driven by Playwright: a poll created
on the page is posted by ``polly bot``, two people logged in with Discord vote, and each sees the
other's vote move the bars without a reload; the API's form errors show next to their fields."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from tests.poll_stack import Polls
from tests.test_frontend import browser  # noqa: F401  (a fixture: Debian's Chromium)

# The pages' subscriptions against one API worker and against two sharing the port.
pytestmark = [pytest.mark.timeout(60), pytest.mark.workers_1_and_2]

WAIT = 10_000  # ms, for what the page shows after the API, the bot or a subscription acts


async def open_page(browser: Browser, polls: Polls, user: str, timezone: str) -> Page:  # noqa: F811
    """The stub in a browser context of its own (cookies, time zone), logged in with Discord (the
    sandbox's consent page) as ``user``."""
    context = await browser.new_context(timezone_id=timezone, locale="en-GB")
    context.set_default_timeout(WAIT)
    page = await context.new_page()
    await page.goto(f"{polls.api.url}/")
    await expect(page.locator("#connection")).to_have_text("signed out", timeout=WAIT)
    await page.get_by_role("link", name="Log in with Discord").click()
    await page.get_by_role("link", name=f"(@{user})").click()
    await expect(page.locator("#viewer")).to_have_text(user.capitalize(), timeout=WAIT)
    await expect(page.locator("#connection")).to_have_text("live", timeout=WAIT)
    await expect(page.locator("#role option").first).to_be_attached(timeout=WAIT)
    await expect(page.locator("#polls-empty")).to_be_visible()
    # Marks this page load: a reload would lose it.
    await page.evaluate("window.loadedOnce = true")
    return page


async def write_poll(page: Page, name: str, options: list[str]) -> None:
    """The form filled in Polly Playground's #polls: ``name``, a question and ``options``."""
    await page.get_by_label("Guild", exact=True).select_option(label="Polly Playground")
    await page.get_by_label("Channel", exact=True).select_option(label="#polls")
    await page.get_by_label("Name", exact=True).fill(name)
    await page.get_by_label("Question", exact=True).fill(f"{name}: what do you say?")
    for number, text in enumerate(options, start=1):
        if number > 2:
            await page.get_by_role("button", name="Add an option").click()
        await page.get_by_label(f"Option {number}", exact=True).fill(text)


async def only_poll(polls: Polls) -> dict[str, Any]:
    """The guild's one poll, as the API keeps it."""
    body = await polls.run("query($g: ID!) { polls(guildId: $g) { nodes { id } } }", {"g": str(polls.guild)})
    [node] = body["data"]["polls"]["nodes"]
    return await polls.get(node["id"])


def result(poll: Locator, position: int) -> Locator:
    return poll.locator(f'.result[data-position="{position}"]')


async def expect_votes(poll: Locator, votes: list[int]) -> None:
    """The poll's bars show ``votes`` per option, each as wide as its share of the voters."""
    voters = sum(votes)  # one choice per voter here
    for position, count in enumerate(votes):
        row = result(poll, position)
        await expect(row).to_have_attribute("data-votes", str(count), timeout=WAIT)
        share = round(100 * count / voters) if voters else 0
        await expect(row.locator(".fill")).to_have_attribute("style", f"width: {share}%;")
        await expect(row.locator(".result-count")).to_have_text(re.compile(rf"^{count} votes? \({share}%\)$"))


async def test_two_people_vote_and_each_sees_the_others_vote_move_the_bars(
    polls: Polls,
    browser: Browser,  # noqa: F811
) -> None:
    alice = await open_page(browser, polls, "alice", "Europe/Berlin")
    bob = await open_page(browser, polls, "bob", "America/New_York")
    # Bob may vote in Polly Playground but not create polls there: no Manage Server.
    await expect(bob.get_by_role("button", name="Create the poll")).to_be_disabled()

    await write_poll(alice, "Lunch", ["Pizza", "Sushi", "Tacos", "Soup"])
    await alice.get_by_role("button", name="Remove option 4").click()
    await expect(alice.get_by_label("Option 4", exact=True)).to_have_count(0)
    started = datetime.now(UTC)
    await alice.get_by_role("button", name="Create the poll").click()
    await expect(alice.locator("#created")).to_contain_text('Created "Lunch"', timeout=WAIT)

    # Posted by polly bot: both pages follow it live, with a link to the message.
    on_alice = alice.get_by_role("article", name="Lunch")
    on_bob = bob.get_by_role("article", name="Lunch")
    for poll in (on_alice, on_bob):
        await expect(poll.locator(".status")).to_have_text("open", timeout=WAIT)
        await expect(poll.get_by_role("link", name="See it in Discord")).to_be_visible(timeout=WAIT)
    stored = await only_poll(polls)
    assert stored["timezone"] == "Europe/Berlin" and stored["channelId"] == str(polls.channel)
    assert [o["text"] for o in stored["options"]] == ["Pizza", "Sushi", "Tacos"]
    opens, closes = datetime.fromisoformat(stored["opensAt"]), datetime.fromisoformat(stored["closesAt"])
    assert started - timedelta(seconds=5) <= opens <= datetime.now(UTC)
    assert timedelta(minutes=59) <= closes - opens <= timedelta(minutes=61)  # the default: an hour
    assert (
        stored["messageUrl"]
        and await on_bob.get_by_role("link", name="See it in Discord").get_attribute("href")
        == stored["messageUrl"]
    )
    assert len(await polls.messages()) == 1

    # Alice votes; Bob's bars move.
    pizza = on_alice.get_by_role("button", name="Pizza", exact=True)
    await pizza.click()
    await expect(pizza).to_have_attribute("aria-pressed", "true")
    await expect(on_alice.locator(".my-ballot")).to_have_text("You voted: Pizza.")
    await expect_votes(on_bob, [1, 0, 0])
    await expect(on_bob.locator(".my-ballot")).to_have_text("You have not voted.")

    # Bob votes; Alice's bars move.
    await on_bob.get_by_role("button", name="Sushi", exact=True).click()
    await expect(on_bob.locator(".my-ballot")).to_have_text("You voted: Sushi.")
    await expect_votes(on_alice, [1, 1, 0])
    await expect_votes(on_bob, [1, 1, 0])

    # Bob changes his mind, then takes his vote back.
    await on_bob.get_by_role("button", name="Pizza", exact=True).click()
    await expect_votes(on_alice, [2, 0, 0])
    await on_bob.get_by_role("button", name="Take my vote back").click()
    await expect(on_bob.locator(".my-ballot")).to_have_text("You have not voted.")
    await expect(on_bob.get_by_role("button", name="Take my vote back")).to_be_hidden()
    await expect_votes(on_alice, [1, 0, 0])
    await expect(on_alice.locator(".voters")).to_have_text("1 person voted.")

    # Closed from elsewhere (an API key): both pages show it, with no vote buttons left.
    await polls.run("mutation($id: ID!) { closePoll(id: $id) { id } }", {"id": stored["id"]})
    for poll in (on_alice, on_bob):
        await expect(poll.locator(".status")).to_have_text("closed", timeout=WAIT)
        await expect(poll.get_by_role("button", name="Pizza", exact=True)).to_have_count(0)
    await expect_votes(on_bob, [1, 0, 0])
    for page in (alice, bob):
        assert await page.evaluate("window.loadedOnce") is True  # never reloaded


async def test_form_errors_show_next_to_their_fields_and_times_keep_the_browsers_zone(
    polls: Polls,
    browser: Browser,  # noqa: F811
) -> None:
    zone = "America/St_Johns"  # -03:30 (or -02:30): an offset behind UTC, with minutes
    alice = await open_page(browser, polls, "alice", zone)
    await expect(alice.locator("#timezone")).to_have_text(zone)

    # One option only (the second left blank): the API's error, next to the options.
    await write_poll(alice, "Dinner", ["Curry", ""])
    await alice.get_by_role("button", name="Create the poll").click()
    options_error = alice.locator("#options-fieldset .field-error[data-error-for=options]")
    await expect(options_error).to_have_text(re.compile("2 to 10 options; 1 were given"), timeout=WAIT)
    await expect(alice.locator("#form-error")).to_be_empty()

    # Options repeated: the error sits in the second option's row, its input marked invalid.
    await alice.get_by_label("Option 2", exact=True).fill("curry")
    await alice.get_by_role("button", name="Create the poll").click()
    second = alice.locator("#options .option-row").nth(1)
    await expect(second.locator(".field-error")).to_have_text(re.compile("repeats option 1"), timeout=WAIT)
    await expect(alice.get_by_label("Option 2", exact=True)).to_have_attribute("aria-invalid", "true")
    await expect(options_error).to_be_empty()  # the earlier error is gone

    # Opening at 09:00 tomorrow, the browser's time: sent with its offset, closing an hour later.
    tomorrow = (datetime.now(ZoneInfo(zone)) + timedelta(days=1)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    await alice.get_by_label("Option 2", exact=True).fill("Dal")
    await alice.get_by_label("At a time").check()
    await alice.get_by_label("Opening time").fill(tomorrow.strftime("%Y-%m-%dT%H:%M"))
    await expect(alice.get_by_label("Closes", exact=True)).to_have_value(tomorrow.strftime("%Y-%m-%dT10:00"))
    await alice.get_by_role("button", name="Create the poll").click()
    dinner = alice.get_by_role("article", name="Dinner")
    await expect(dinner.locator(".status")).to_have_text("scheduled", timeout=WAIT)
    await expect(dinner.locator(".posted")).to_have_text("Posted when it opens.")
    await expect(alice.locator("#options .field-error:not(:empty)")).to_have_count(0)
    stored = await only_poll(polls)
    assert stored["timezone"] == zone
    assert datetime.fromisoformat(stored["opensAt"]) == tomorrow
    assert datetime.fromisoformat(stored["closesAt"]) == tomorrow + timedelta(hours=1)

    # A closing time before the opening: the API's error next to "Closes".
    await write_poll(alice, "Breakfast", ["Toast", "Eggs"])
    await alice.get_by_label("Closes", exact=True).fill(tomorrow.strftime("%Y-%m-%dT08:00"))
    await alice.get_by_role("button", name="Create the poll").click()
    closes_error = alice.locator("#closesAt-error")
    await expect(closes_error).to_have_text("closesAt must be after opensAt.", timeout=WAIT)
    await expect(alice.get_by_label("Closes", exact=True)).to_have_attribute("aria-invalid", "true")

    # A poll made elsewhere (an API key) with two choices per voter appears live: checkboxes.
    games_options = [{"text": "Chess"}, {"text": "Go"}, {"text": "Poker"}]
    await polls.create(name="Games", options=games_options, maxChoices=2)
    games = alice.get_by_role("article", name="Games")
    await expect(games.locator(".status")).to_have_text("open", timeout=WAIT)
    await games.get_by_role("checkbox", name="Chess").check()
    await games.get_by_role("checkbox", name="Poker").check()
    await games.get_by_role("button", name="Vote", exact=True).click()
    await expect(games.locator(".my-ballot")).to_have_text("You voted: Chess, Poker.")
    await expect(result(games, 0)).to_have_attribute("data-votes", "1")
    await expect(result(games, 2).locator(".fill")).to_have_attribute("style", "width: 100%;")
    await expect(games.get_by_role("checkbox", name="Go")).not_to_be_checked()
    assert await alice.evaluate("window.loadedOnce") is True
