"""Who may read and run polls: every kind of caller against every poll query and mutation, over
HTTP and over graphql-transport-ws, each cell of the matrix its own test.

One sandbox, one API and one ``polly bot`` (which posts the polls, so they carry message ids)
serve the whole module. Every mutation cell acts on a poll of its own, made for it in the state
where the mutation would succeed, so cells are independent of each other and of their order.

The target guild is Polly Playground. Its members: alice owns it (and holds Admins), dave holds
"Poll Managers" (Manage Server, added to the default fixture here), bob is a moderator (Manage
Messages, Kick Members: not enough), carol a plain member. erin is not in it (she is in Quiet
Corner, where the other poll lives). Rules (app/access/policy.py): reading needs membership or
a key for the guild with polls:read; writing needs Manage Server or Administrator (owners
count), or a key for the guild with polls:write. A poll or guild the caller may not see is
answered exactly like one that does not exist; a key lacking a scope gets FORBIDDEN naming it; a
member without the permission gets FORBIDDEN; anonymous callers get UNAUTHENTICATED. Refusals
hold no poll field value, and a refused mutation changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import redis
import websockets
from discord import Permissions
from websockets.typing import Subprotocol

from app.access.cookies import SESSION_COOKIE
from app.bot.runner import run_bot
from app.discord.client import point_discord_py_at
from app.polls.record import Status
from app.redis_server import RedisServer
from app.sandbox.builtin import default_fixture
from app.sandbox.fixture import Fixture, Role
from app.sandbox.ratelimit import RateLimitConfig
from app.sandbox.server import Sandbox
from app.sandbox.snowflake import snowflake_at
from app.storage.polls import PollStore
from tests.conftest import (
    RunningApi,
    RunningBot,
    channel_id,
    create_key,
    guild_id,
    start_api,
    stop_api,
    wait_until,
)
from tests.test_access_matrix import Answer, Caller, browser, key_caller, key_id, log_in

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(90)]

TARGET = "Polly Playground"
OTHER = "Quiet Corner"
MADE_UP_GUILD = snowflake_at(1_704_067_200_000 + 777_777)  # no fixture guild has it
MADE_UP_POLL = 987_654_321  # poll ids count up from 1
READ, WRITE = "polls:read", "polls:write"

# -- the callers ------------------------------------------------------------------------------------

USERS = {"member": "carol", "moderator": "bob", "manager": "dave", "owner": "alice", "outsider": "erin"}
KEYS = {
    "key:read": (TARGET, [READ]),
    "key:write": (TARGET, [WRITE]),
    "key:both": (TARGET, [READ, WRITE]),
    "key:other": (OTHER, [READ, WRITE]),
}
ROWS = ["anonymous", *KEYS, "member", "moderator", "manager", "owner", "outsider"]
# Who may read the target guild's polls: everyone else must learn nothing of them.
READERS = {"key:read", "key:both", "member", "moderator", "manager", "owner"}


def access_fixture() -> Fixture:
    """The default world, plus a "Poll Managers" role (Manage Server and nothing else) for dave
    in Polly Playground: a manager who is neither owner nor administrator."""
    fixture = default_fixture()
    playground = next(guild for guild in fixture.guilds if guild.name == TARGET)
    managers = snowflake_at(1_704_067_200_000 + 900_000)
    playground.roles.append(
        Role(id=managers, name="Poll Managers", position=9, permissions=Permissions(manage_guild=True).value)
    )
    dave = next(user.id for user in fixture.users if user.username == "dave")
    next(member for member in playground.members if member.user_id == dave).roles.append(managers)
    return Fixture.model_validate(fixture.model_dump())


# -- the operations ---------------------------------------------------------------------------------

FIELDS = """id guildId channelId name question options { position text emoji } status opensAt closesAt
timezone anonymous maxChoices resultsVisibility pingRoleId pingOnOpen pingOnClose allowedRoleIds messageId
messageUrl createdBy version problem { code message at }"""
DOCUMENTS = {
    "poll": f"query($id: ID!) {{ poll(id: $id) {{ {FIELDS} }} }}",
    "polls": f"query($g: ID!) {{ polls(guildId: $g, first: 50) {{ nodes {{ {FIELDS} }} "
    "pageInfo { endCursor hasNextPage } } }",
    "createPoll": f"mutation($input: CreatePollInput!) {{ createPoll(input: $input) {{ {FIELDS} }} }}",
    "updatePoll": "mutation($id: ID!, $v: Int!, $input: UpdatePollInput!) "
    f"{{ updatePoll(id: $id, expectedVersion: $v, input: $input) {{ {FIELDS} }} }}",
    "openPollNow": f"mutation($id: ID!) {{ openPollNow(id: $id) {{ {FIELDS} }} }}",
    "closePoll": f"mutation($id: ID!) {{ closePoll(id: $id) {{ {FIELDS} }} }}",
    "reopenPoll": "mutation($id: ID!, $closesAt: DateTime!) "
    f"{{ reopenPoll(id: $id, closesAt: $closesAt) {{ {FIELDS} }} }}",
    "cancelPoll": f"mutation($id: ID!) {{ cancelPoll(id: $id) {{ {FIELDS} }} }}",
    "deletePoll": "mutation($id: ID!) { deletePoll(id: $id) }",
}
OPERATIONS = list(DOCUMENTS)
GUILD_OPERATIONS = {"polls", "createPoll"}  # asked about a guild; the rest about a poll
# The state each poll mutation succeeds in: the poll each cell acts on is made in it.
STATE_FOR = {
    "updatePoll": "SCHEDULED",
    "openPollNow": "SCHEDULED",
    "closePoll": "OPEN",
    "reopenPoll": "CLOSED",
    "cancelPoll": "OPEN",
    "deletePoll": "OPEN",
}
TRANSPORTS = ["http", "ws"]

# -- the matrix -------------------------------------------------------------------------------------

TABLE = """
           poll      polls     createPoll updatePoll openPollNow closePoll reopenPoll cancelPoll deletePoll
anonymous  UNAUTH    UNAUTH    UNAUTH     UNAUTH     UNAUTH      UNAUTH    UNAUTH     UNAUTH     UNAUTH
key:read   data      data      FORBIDDEN  FORBIDDEN  FORBIDDEN   FORBIDDEN FORBIDDEN  FORBIDDEN  FORBIDDEN
key:write  FORBIDDEN FORBIDDEN data       data       data        data      data       data       data
key:both   data      data      data       data       data        data      data       data       data
key:other  NOT_FOUND NOT_FOUND NOT_FOUND  NOT_FOUND  NOT_FOUND   NOT_FOUND NOT_FOUND  NOT_FOUND  NOT_FOUND
member     data      data      FORBIDDEN  FORBIDDEN  FORBIDDEN   FORBIDDEN FORBIDDEN  FORBIDDEN  FORBIDDEN
moderator  data      data      FORBIDDEN  FORBIDDEN  FORBIDDEN   FORBIDDEN FORBIDDEN  FORBIDDEN  FORBIDDEN
manager    data      data      data       data       data        data      data       data       data
owner      data      data      data       data       data        data      data       data       data
outsider   NOT_FOUND NOT_FOUND NOT_FOUND  NOT_FOUND  NOT_FOUND   NOT_FOUND NOT_FOUND  NOT_FOUND  NOT_FOUND
"""


def parse_table(table: str) -> dict[str, dict[str, str]]:
    header, *rows = [line.split() for line in table.strip().splitlines()]
    assert header == OPERATIONS, header
    assert [row[0] for row in rows] == ROWS, rows
    codes = {"UNAUTH": "UNAUTHENTICATED", "NOT_FOUND": "NOT_FOUND", "FORBIDDEN": "FORBIDDEN", "data": "data"}
    return {name: dict(zip(header, (codes[cell] for cell in cells), strict=True)) for name, *cells in rows}


MATRIX = parse_table(TABLE)


def cells() -> Iterable[Any]:
    for transport in TRANSPORTS:
        for row in ROWS:
            for operation in OPERATIONS:
                yield pytest.param(transport, row, operation, id=f"{transport}-{row}-{operation}")


# -- the world --------------------------------------------------------------------------------------


def token() -> str:
    """A string no answer could hold by chance: a leak of the poll it names is unmistakable."""
    return secrets.token_hex(6)


@dataclass
class Who:
    """A caller, as it presents itself on each transport."""

    caller: Caller
    http_headers: dict[str, str] = field(default_factory=dict)
    created_by: str | None = None  # what createdBy says for polls it creates


@dataclass
class World:
    api: RunningApi
    bot: RunningBot
    store: PollStore
    target: int  # Polly Playground's id
    channel: int  # its #polls
    admin: Who  # a key for every fixture guild with both scopes: reads back what happened
    callers: dict[str, Who]
    polls: dict[tuple[str, str, str], dict[str, Any]]  # (transport, row, mutation): its own poll
    showcase: dict[str, Any]  # an open, posted poll of the target that every read cell asks about
    elsewhere: dict[str, Any]  # an open, posted poll of Quiet Corner
    secrets: list[str] = field(default_factory=list)  # every poll's values
    elsewhere_secrets: list[str] = field(default_factory=list)  # Quiet Corner's poll's values


def values_of(poll: dict[str, Any]) -> list[str]:
    """The field values that only an answer about ``poll`` could hold."""
    found = [poll["name"], poll["question"], *(option["text"] for option in poll["options"])]
    found.append(poll["channelId"])
    if poll["messageId"] is not None:
        found.append(poll["messageId"])
    return found


async def over_http(who: Who, query: str, variables: dict[str, Any]) -> Answer:
    caller = who.caller
    headers = {**caller.headers, **who.http_headers}
    response = await caller.client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    return Answer(response.status_code, response.json(), response.text, dict(response.headers))


async def over_ws(api: RunningApi, who: Who, query: str, variables: dict[str, Any]) -> Answer:
    """graphql-transport-ws: connection_init (with the key, if any), subscribe, every message until
    ``complete`` or ``error``."""
    caller = who.caller
    received: list[str] = []
    body: dict[str, Any] = {}
    async with websockets.connect(
        api.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")], additional_headers=caller.ws_headers
    ) as ws:
        init: dict[str, Any] = {"type": "connection_init"}
        if caller.init_payload is not None:
            init["payload"] = caller.init_payload
        await ws.send(json.dumps(init))
        async with asyncio.timeout(10):
            received.append(str(await ws.recv()))
            assert json.loads(received[-1])["type"] == "connection_ack", received
            payload = {"query": query, "variables": variables}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            while True:
                received.append(str(await ws.recv()))
                message = json.loads(received[-1])
                if message["type"] == "next":
                    assert not body, received  # a query or mutation has one result
                    body = message["payload"]
                elif message["type"] == "error":
                    body = {"data": None, "errors": message["payload"]}
                    break
                elif message["type"] == "complete":
                    break
                else:
                    assert message["type"] == "ping", message
    return Answer(200, body, "\n".join(received))


async def ask(world: World, who: Who, transport: str, operation: str, variables: dict[str, Any]) -> Answer:
    query = DOCUMENTS[operation]
    if transport == "http":
        return await over_http(who, query, variables)
    return await over_ws(world.api, who, query, variables)


async def as_admin(world: World, operation: str, variables: dict[str, Any]) -> dict[str, Any]:
    answer = await over_http(world.admin, DOCUMENTS[operation], variables)
    assert answer.status == 200, answer.text
    return answer.body


async def read_back(world: World, poll_id: str) -> dict[str, Any] | None:
    """The poll as the all-seeing key reads it now; None when it does not exist (any more)."""
    body = await as_admin(world, "poll", {"id": poll_id})
    if body.get("errors"):
        assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"], body
        return None
    poll: dict[str, Any] = body["data"]["poll"]
    return poll


def draft(guild: int, channel: int, *, opens_in: timedelta | None = None) -> dict[str, Any]:
    now = datetime.now(UTC)
    given = {
        "guildId": str(guild),
        "channelId": str(channel),
        "name": f"name-{token()}",
        "question": f"question-{token()}?",
        "options": [{"text": f"option-{token()}"}, {"text": f"option-{token()}"}],
        "closesAt": (now + timedelta(hours=2)).isoformat(),
    }
    if opens_in is not None:
        given["opensAt"] = (now + opens_in).isoformat()
    return given


async def make_poll(world: World, guild: int, channel: int, state: str) -> dict[str, Any]:
    """A poll in ``state``, made by the all-seeing key (SCHEDULED ones open in an hour)."""
    opens_in = timedelta(hours=1) if state == "SCHEDULED" else None
    body = await as_admin(world, "createPoll", {"input": draft(guild, channel, opens_in=opens_in)})
    assert "errors" not in body, body
    poll: dict[str, Any] = body["data"]["createPoll"]
    return poll


async def settled(world: World, wanted: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Wait until each poll (id: status) is in its status with no Discord work left (so nothing
    the scheduler does changes it during the tests); each as read back then."""
    ids = [int(poll_id) for poll_id in wanted]

    async def unsettled() -> list[tuple[Any, ...]]:
        found = await world.store.get_many(ids)
        return [
            (poll.id, poll.status, poll.pending, poll.message_id, poll.problem, wanted[str(poll.id)])
            for poll in found.values()
            if poll.status is not Status(wanted[str(poll.id)])
            # A scheduled poll's posting waits for its opensAt; any other has no work left.
            or (poll.status is not Status.SCHEDULED and (poll.pending is not None or poll.message_id is None))
        ]

    async def done() -> bool:
        return not await unsettled()

    try:
        await wait_until(done, within=30, interval=0.1)
    except TimeoutError:
        raise AssertionError(f"polls not settled: {(await unsettled())[:10]}") from None
    polls = await asyncio.gather(*(read_back(world, poll_id) for poll_id in wanted))
    return {poll["id"]: poll for poll in polls if poll is not None}


async def make_callers(api: RunningApi, fixture: Fixture) -> dict[str, Who]:
    callers: dict[str, Who] = {"anonymous": Who(Caller("anonymous", browser(api)))}
    for name, (guild_name, scopes) in KEYS.items():
        key = await create_key(api.settings, [guild_id(fixture, guild_name)], scopes, name=name)
        callers[name] = Who(key_caller(api, name, key), created_by=f"key:{key_id(key)}")
    for name, user_name in USERS.items():
        client = await log_in(api, user_name)
        cookie = client.cookies[SESSION_COOKIE]
        # As the site's own pages send it: mutations signed in by cookie must name their Origin.
        caller = Caller(name, client, ws_headers={"Cookie": f"{SESSION_COOKIE}={cookie}", "Origin": api.url})
        user = next(user.id for user in fixture.users if user.username == user_name)
        callers[name] = Who(caller, {"Origin": api.url}, created_by=f"user:{user}")
    return callers


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    fixture = access_fixture()
    with contextlib.closing(redis.Redis(port=redis_server.port)) as client:
        client.flushall()  # nothing cached of another module's (same-id) fixture
    data_dir: Path = tmp_path_factory.mktemp("poll-access") / "data"
    async with contextlib.AsyncExitStack() as stack:
        sandbox = Sandbox(fixture, rate_limits=RateLimitConfig(enabled=False))
        await sandbox.start("127.0.0.1", 0)
        stack.push_async_callback(sandbox.stop)
        point_discord_py_at(sandbox.api_url, sandbox.gateway_url)
        api = await start_api(sandbox, redis_server.url, data_dir=data_dir)
        stack.push_async_callback(stop_api, api)
        # Eighty polls are posted before the first test: the bot's own pacing (5 a channel
        # every 5 s, for Discord) would take a minute, and is not what this module tests.
        bot = RunningBot(
            sandbox, redis_server.url, data_dir=data_dir, discord_channel_rate=1000, discord_global_rate=1000
        )
        stack.push_async_callback(bot.redis.aclose)
        bot.task = asyncio.create_task(run_bot(bot.settings, bot.stop, handle_signals=False))

        async def stop_bot() -> None:
            bot.stop.set()
            assert bot.task is not None
            await asyncio.wait_for(bot.task, timeout=20)

        stack.push_async_callback(stop_bot)
        await wait_until(bot.all_cached, within=20)

        target = guild_id(fixture, TARGET)
        all_guilds = [guild.id for guild in fixture.guilds]
        admin_key = await create_key(api.settings, all_guilds, [READ, WRITE], name="admin")
        admin = Who(key_caller(api, "admin", admin_key))
        callers = await make_callers(api, fixture)
        for who in [admin, *callers.values()]:
            stack.push_async_callback(who.caller.client.aclose)
        world = World(
            api, bot, PollStore(api.services.database), target, channel_id(fixture, TARGET, "polls"),
            admin, callers, {}, {}, {},
        )  # fmt: skip

        # Each mutation cell's own poll, in the state where the mutation would succeed.
        channels = [channel_id(fixture, TARGET, "polls"), channel_id(fixture, TARGET, "general")]
        slots = [(t, row, op) for t in TRANSPORTS for row in ROWS for op in STATE_FOR]
        limit = asyncio.Semaphore(16)

        async def made(index: int, state: str) -> dict[str, Any]:
            async with limit:
                return await make_poll(world, target, channels[index % 2], state)

        made_polls = await asyncio.gather(*(made(i, STATE_FOR[slot[2]]) for i, slot in enumerate(slots)))
        elsewhere = await make_poll(
            world, guild_id(fixture, OTHER), channel_id(fixture, OTHER, "general"), "OPEN"
        )
        showcase = await make_poll(world, target, world.channel, "OPEN")  # the newest: first in polls()
        opened = {
            poll["id"]: "SCHEDULED" if STATE_FOR[op] == "SCHEDULED" else "OPEN"
            for (_, _, op), poll in zip(slots, made_polls, strict=True)
        }
        await settled(world, {**opened, elsewhere["id"]: "OPEN", showcase["id"]: "OPEN"})
        closing = [
            poll["id"] for (_, _, op), poll in zip(slots, made_polls, strict=True) if op == "reopenPoll"
        ]
        for poll_id in closing:
            body = await as_admin(world, "closePoll", {"id": poll_id})
            assert "errors" not in body, body
        final = await settled(
            world,
            {**opened, **dict.fromkeys(closing, "CLOSED"), elsewhere["id"]: "OPEN", showcase["id"]: "OPEN"},
        )
        world.polls = {slot: final[poll["id"]] for slot, poll in zip(slots, made_polls, strict=True)}
        world.showcase = final[showcase["id"]]
        world.elsewhere = final[elsewhere["id"]]
        world.elsewhere_secrets = values_of(world.elsewhere)
        world.secrets = [value for poll in final.values() for value in values_of(poll)]
        assert world.showcase["messageId"] and world.elsewhere["messageId"]
        yield world


# -- one cell ---------------------------------------------------------------------------------------


def arguments(
    world: World, operation: str, subject: int | str, poll: dict[str, Any] | None
) -> dict[str, Any]:
    """The operation's variables, about guild or poll ``subject``; ``poll`` is the cell's own."""
    if operation == "polls":
        return {"g": str(subject)}
    if operation == "createPoll":
        return {"input": draft(int(subject), world.channel, opens_in=timedelta(minutes=30))}
    variables: dict[str, Any] = {"id": str(subject)}
    if operation == "updatePoll":
        assert poll is not None
        variables |= {"v": poll["version"], "input": {"name": f"renamed-{token()}"}}
    elif operation == "reopenPoll":
        variables["closesAt"] = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    return variables


def codes(answer: Answer) -> list[str]:
    return [error.get("extensions", {}).get("code") for error in answer.body.get("errors") or []]


def normalized(answer: Answer, subject: int | str) -> tuple[int, str]:
    """The answer with the id it was asked about (a poll's, a guild's, a channel's or a role's)
    blanked out of its messages, to tell whether two answers can be told apart."""
    body = json.loads(json.dumps(answer.body))
    for error in body.get("errors") or []:
        error["message"] = re.sub(rf"\b{subject}\b", "<subject>", error["message"])
    return answer.status, json.dumps(body, sort_keys=True)


def check_refusal(
    world: World, row: str, operation: str, expected: str, answer: Answer, subject: int | str
) -> list[str]:
    problems: list[str] = []
    got = f"HTTP {answer.status} {answer.text[:400]!r}"
    if answer.status != 200 or codes(answer) != [expected] or answer.body.get("data") is not None:
        problems.append(f"expected {expected} and no data, got {got}")
    else:
        message = answer.body["errors"][0]["message"]
        if expected == "NOT_FOUND":
            kind = "Guild" if operation in GUILD_OPERATIONS else "Poll"
            if message != f"{kind} {subject} does not exist.":
                problems.append(f"NOT_FOUND should say '{kind} {subject} does not exist.', got {message!r}")
        elif expected == "FORBIDDEN":
            needed = READ if operation in ("poll", "polls") else WRITE
            words = f"lacks the {needed} scope" if row.startswith("key:") else "Manage Server"
            if words not in message:
                problems.append(f"FORBIDDEN should say {words!r}: {message!r}")
    leaked = [value for value in world.secrets if value in answer.text]
    if leaked:
        problems.append(f"the refusal holds poll field values {leaked}: {got}")
    return problems


async def check_data(
    world: World, row: str, operation: str, answer: Answer, poll: dict[str, Any] | None, given: dict[str, Any]
) -> list[str]:
    got = f"HTTP {answer.status} {answer.text[:400]!r}"
    data = answer.body.get("data")
    if answer.status != 200 or codes(answer) or not data:
        return [f"expected data, got {got}"]
    result = data[operation]
    if operation in ("poll", "polls"):
        # The leak search's own check: what a refusal must not hold, an answer does hold.
        missing = [value for value in values_of(world.showcase) if value not in answer.text]
        if missing:
            return [f"the showcase poll's values {missing} are not in the answer: {got}"]
    if operation == "poll":
        return [] if result == world.showcase else [f"not the poll as it is: {result} != {world.showcase}"]
    if operation == "polls":
        ids = [node["id"] for node in result["nodes"]]
        problems = []
        if any(node["guildId"] != str(world.target) for node in result["nodes"]):
            problems.append(f"lists polls of other guilds: {got}")
        if world.showcase["id"] not in ids or world.elsewhere["id"] in ids:
            problems.append(
                f"the newest poll {world.showcase['id']} is missing, or another guild's is there: {ids}"
            )
        return problems
    if operation == "createPoll":
        wanted = {
            "guildId": str(world.target),
            "name": given["input"]["name"],
            "status": "SCHEDULED",
            "version": 1,
            "createdBy": world.callers[row].created_by,
        }
        differs = {key: result[key] for key, value in wanted.items() if result[key] != value}
        return [f"created {differs}, expected {wanted}"] if differs else []
    assert poll is not None
    if operation == "deletePoll":
        problems = [] if result is True else [f"deletePoll answered {result!r}"]
        if await read_back(world, poll["id"]) is not None:
            problems.append("the poll is still there")
        return problems
    wanted = {
        "updatePoll": {"name": given.get("input", {}).get("name"), "status": "SCHEDULED"},
        "openPollNow": {"status": "SCHEDULED"},  # the bot posts it, and opens it, a moment later
        "closePoll": {"status": "CLOSED"},
        "reopenPoll": {"status": "OPEN", "closesAt": given.get("closesAt")},
        "cancelPoll": {"status": "CANCELLED"},
    }[operation]
    wanted = {**wanted, "id": poll["id"], "version": poll["version"] + 1}
    if operation == "reopenPoll":  # the same moment, however it is written
        result = {**result, "closesAt": datetime.fromisoformat(result["closesAt"]).isoformat()}
        wanted["closesAt"] = datetime.fromisoformat(given["closesAt"]).isoformat()
    differs = {key: result[key] for key, value in wanted.items() if result[key] != value}
    if operation == "openPollNow" and datetime.fromisoformat(result["opensAt"]) > datetime.now(UTC):
        differs["opensAt"] = result["opensAt"]
    return [f"the poll is {differs} after {operation}, expected {wanted}"] if differs else []


@pytest.mark.parametrize(("transport", "row", "operation"), list(cells()))
async def test_poll_access(world: World, transport: str, row: str, operation: str) -> None:
    """One cell: caller ``row`` does ``operation`` over ``transport`` on the target guild (or on a
    poll of it made for this cell), and gets exactly what the matrix says; a refusal holds no
    poll's values, cannot be told from the answer about a poll or guild that does not exist
    (when the caller may not read the real one), and changed nothing."""
    expected = MATRIX[row][operation]
    who = world.callers[row]
    poll = world.polls.get((transport, row, operation))
    if operation in GUILD_OPERATIONS:
        subject: int | str = world.target
    else:
        subject = (poll or world.showcase)["id"]
    given = arguments(world, operation, subject, poll)
    answer = await ask(world, who, transport, operation, given)

    problems = (
        await check_data(world, row, operation, answer, poll, given)
        if expected == "data"
        else check_refusal(world, row, operation, expected, answer, subject)
    )
    # Nobody asking about Polly Playground may ever see Quiet Corner's poll.
    leaked = [value for value in world.elsewhere_secrets if value in answer.text]
    if leaked:
        problems.append(f"the answer holds Quiet Corner's poll's values {leaked}")

    if expected != "data":
        if poll is not None:
            after = await read_back(world, poll["id"])
            if after != poll:
                was, now = poll["version"], after and after["version"]
                problems.append(f"the refused {operation} changed the poll (version {was} -> {now}): {after}")
        if operation == "createPoll":
            newest = await as_admin(world, "polls", {"g": str(world.target)})
            names = [node["name"] for node in newest["data"]["polls"]["nodes"]]
            if given["input"]["name"] in names:
                problems.append("the refused createPoll created the poll")
        # Callers that may neither read nor run the target's polls (a write-only key may not read).
        outsider = row not in READERS and (operation in ("poll", "polls") or row != "key:write")
        if outsider:
            # The same answer, byte for byte, as about a poll or guild that does not exist.
            made_up = MADE_UP_GUILD if operation in GUILD_OPERATIONS else MADE_UP_POLL
            ghost = await ask(world, who, transport, operation, arguments(world, operation, made_up, poll))
            if normalized(ghost, made_up) != normalized(answer, subject):
                problems.append(
                    f"the real {subject}'s answer {answer.text[:300]!r} differs from made-up "
                    f"{made_up}'s {ghost.text[:300]!r}"
                )
            if expected == "NOT_FOUND" and operation not in GUILD_OPERATIONS:
                # ... and as the answer to a caller who could see it, were it there.
                missing = await ask(
                    world, world.admin, transport, operation, arguments(world, operation, made_up, poll)
                )
                if normalized(missing, made_up) != normalized(answer, subject):
                    problems.append(
                        f"the refusal {answer.text[:300]!r} differs from a poll that does not exist,"
                        f" {missing.text[:300]!r}"
                    )
    assert not problems, f"{transport} / {row} / {operation}:\n" + "\n".join(problems)


# -- another guild's ids in the input ---------------------------------------------------------------

MADE_UP_ID = snowflake_at(1_704_067_200_000 + 888_888)  # no channel or role has it


@pytest.mark.parametrize("row", ["manager", "key:both"])
@pytest.mark.parametrize("operation", ["createPoll", "updatePoll"])
@pytest.mark.parametrize("given", ["channelId", "pingRoleId", "allowedRoleIds"])
async def test_another_guilds_channel_or_role_reads_like_a_made_up_one(
    world: World, row: str, operation: str, given: str
) -> None:
    """A manager of the target who names Quiet Corner's channel (or role) in a poll learns nothing
    of it: the answer is the one for an id that does not exist, and holds nothing of Quiet Corner."""
    fixture = world.api.sandbox.fixture
    quiet = next(guild for guild in fixture.guilds if guild.name == OTHER)
    foreign = {
        "channelId": int(world.elsewhere["channelId"]),  # where Quiet Corner's poll is posted
        "pingRoleId": next(role.id for role in quiet.roles if role.name == "Helpers"),  # mentionable
        "allowedRoleIds": next(role.id for role in quiet.roles if role.name == "Artists"),
    }[given]
    poll = (
        await make_poll(world, world.target, world.channel, "SCHEDULED")
        if operation == "updatePoll"
        else None
    )

    async def attempt(value: int) -> Answer:
        change = {given: [str(value)] if given == "allowedRoleIds" else str(value)}
        if poll is None:
            variables = {
                "input": {**draft(world.target, world.channel, opens_in=timedelta(hours=1)), **change}
            }
        else:
            variables = {"id": poll["id"], "v": poll["version"], "input": change}
        return await over_http(world.callers[row], DOCUMENTS[operation], variables)

    answer, made_up = await attempt(foreign), await attempt(MADE_UP_ID)
    assert codes(answer) == ["BAD_USER_INPUT"] and answer.body["data"] is None, answer.text
    assert normalized(answer, foreign) == normalized(made_up, MADE_UP_ID), (answer.text, made_up.text)
    others = [value for value in world.elsewhere_secrets if value != str(foreign)]
    others += [role.name for role in quiet.roles if role.id != quiet.id and not role.managed] + [OTHER]
    assert not [value for value in others if value in answer.text], answer.text
    if poll is not None:
        assert await read_back(world, poll["id"]) == poll
