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

A second matrix (the vote cells) covers votes and results: castVote and retractVote (people who
may read the poll, never keys; role-restricted polls need one of the roles), Poll.results (hidden
from all but managers while an AFTER_CLOSE poll is open), Poll.myBallot (one's own only),
Poll.voters (managers only, and nobody for an anonymous poll), GET /polls/{id}/results.csv (HTTP
only) and pollUpdated (graphql-transport-ws only). Polls voted in are made, and their ballots
cast, before the first test: a cell that votes or subscribes acts on a poll of its own, the others
read shared ones. No answer (nor subscription message) holds a count of hidden results unless its
caller may see them, none names a voter by Discord id unless it may (never about an anonymous
poll): both are searched for in the raw bytes. A refused vote changes no result.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
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
from app.cache.event_log import EventLog
from app.discord.client import point_discord_py_at
from app.polls.record import Status
from app.redis_server import RedisServer
from app.sandbox.builtin import default_fixture
from app.sandbox.fixture import Fixture, Role
from app.sandbox.ratelimit import RateLimitConfig
from app.sandbox.server import Sandbox
from app.sandbox.snowflake import snowflake_at
from app.storage.ballots import BallotStore, Results
from app.storage.polls import PollStore
from tests.conftest import (
    RunningApi,
    RunningBot,
    channel_id,
    create_key,
    guild_id,
    role_id,
    start_api,
    stop_api,
    wait_until,
)
from tests.test_access_matrix import Answer, Caller, browser, key_caller, key_id, log_in

# The module's world (some 170 polls, posted and voted in) takes a while on a loaded machine.
# One module-wide world (its setup takes most of this module's time): one test process holds it.
# Not workers_1_and_2: that world (one API, started by the module, not the api fixtures) would
# be built twice, its long setup and all of its cells doubled, for the pollUpdated cells.
pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(300),
    pytest.mark.xdist_group("poll_access"),
]

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


# -- the vote cells: votes and results --------------------------------------------------------------

RESULTS = "results { voters version options { position votes } }"
VOTE_DOCUMENTS = {
    "castVote": "mutation($id: ID!, $positions: [Int!]!) "
    f"{{ castVote(pollId: $id, positions: $positions) {{ id myBallot {RESULTS} }} }}",
    "retractVote": f"mutation($id: ID!) {{ retractVote(pollId: $id) {{ id myBallot {RESULTS} }} }}",
    "results": f"query($id: ID!) {{ poll(id: $id) {{ id status resultsVisibility {RESULTS} }} }}",
    "myBallot": "query($id: ID!) { poll(id: $id) { id myBallot } }",
    # A page of one voter: the data cells follow endCursor to the second (and last) page.
    "voters": "query($id: ID!, $after: String) { poll(id: $id) { id voters(position: 0, first: 1, "
    "after: $after) { nodes { userId votedAt } pageInfo { endCursor hasNextPage } } } }",
    "pollUpdated": "subscription($g: ID!, $p: ID, $since: String) { pollUpdated(guildId: $g, "
    "pollId: $p, since: $since) { guildId pollId kind eventId "
    f"poll {{ id name status resultsVisibility {RESULTS} }} }} }}",
}
VOTES = {"castVote", "retractVote"}
CAST = [1]  # what castVote cells choose: every ballot cast before the tests chose option 0


@dataclass(frozen=True)
class Kind:
    """A poll of the vote cells: its options and settings, the ballots cast in it before the
    tests (caller row: positions, cast in this order), and whether it is then closed."""

    options: int = 2
    max_choices: int = 1
    hidden: bool = False  # resultsVisibility AFTER_CLOSE
    anonymous: bool = False
    restricted: bool = False  # allowedRoleIds: "Poll Voters" (bob, the moderator, holds it)
    ballots: dict[str, list[int]] = field(default_factory=dict)
    closed: bool = False


# Three options, each ballot different (the owner casts none): myBallot shows whose it is.
BALLOTS = {"member": [0], "moderator": [1], "manager": [0, 2]}
EVERYONE_FIRST = {"member": [0], "moderator": [0], "manager": [0], "owner": [0]}
SHARED = {  # read by every results, myBallot, voters and CSV cell
    "live": Kind(options=3, max_choices=2, ballots=BALLOTS),
    "hidden": Kind(options=3, max_choices=2, hidden=True, ballots=BALLOTS),
    "closed": Kind(options=3, max_choices=2, hidden=True, ballots=BALLOTS, closed=True),
    "anonymous": Kind(options=3, max_choices=2, anonymous=True, ballots=BALLOTS),
}
OWN = {  # one poll for each cell of these columns
    "castVote": Kind(ballots=EVERYONE_FIRST),
    "castVote@hidden": Kind(hidden=True, ballots=EVERYONE_FIRST),
    "castVote@roles": Kind(restricted=True, ballots={"moderator": [0]}),
    "retractVote": Kind(ballots=EVERYONE_FIRST),
    "retractVote@roles": Kind(restricted=True, ballots={"moderator": [0]}),
    "pollUpdated": Kind(options=3, max_choices=2, ballots=BALLOTS),
    "pollUpdated@hidden": Kind(options=3, max_choices=2, hidden=True, ballots=BALLOTS),
}
# column: (operation, the poll it asks about: a shared one, or "own")
COLUMNS = {
    "castVote": ("castVote", "own"),
    "castVote@hidden": ("castVote", "own"),
    "castVote@roles": ("castVote", "own"),
    "retractVote": ("retractVote", "own"),
    "retractVote@roles": ("retractVote", "own"),
    "myBallot": ("myBallot", "live"),
    "voters": ("voters", "live"),
    "voters@anon": ("voters", "anonymous"),
    "results": ("results", "live"),
    "results@hidden": ("results", "hidden"),
    "results@closed": ("results", "closed"),
    "pollUpdated": ("pollUpdated", "own"),
    "pollUpdated@hidden": ("pollUpdated", "own"),
    "csv": ("csv", "live"),
    "csv@hidden": ("csv", "hidden"),
    "csv@closed": ("csv", "closed"),
    "csv@anon": ("csv", "anonymous"),
}


def transports_of(operation: str) -> list[str]:
    """The CSV export is HTTP only; a subscription is served over WebSocket only."""
    return {"csv": ["http"], "pollUpdated": ["ws"]}.get(operation, TRANSPORTS)


# What each cell answers. Data: counts (the answer shows the results), null (results, or
# myBallot, is null), mine (myBallot: the ballot the caller cast before the tests), data (the
# voters, page by page), voters (a CSV of counts and who voted for what; counts: counts only).
# Refusals: UNAUTH, NOT_FOUND ("Poll <id> does not exist.", or the guild's for pollUpdated),
# and FORBIDDEN for NO_SCOPE (a key lacking polls:read, or polls:write; naming it), NO_KEYS
# ("An API key never votes..."), NO_ROLE (none of allowedRoleIds), NO_PERM (Manage Server),
# ANONYMOUS (voters of an anonymous poll) and HIDDEN (the CSV of hidden results).
VOTE_TABLE = """
           castVote  castVote@hidden castVote@roles retractVote retractVote@roles
anonymous  UNAUTH    UNAUTH          UNAUTH         UNAUTH      UNAUTH
key:read   NO_KEYS   NO_KEYS         NO_KEYS        NO_KEYS     NO_KEYS
key:write  NO_SCOPE  NO_SCOPE        NO_SCOPE       NO_SCOPE    NO_SCOPE
key:both   NO_KEYS   NO_KEYS         NO_KEYS        NO_KEYS     NO_KEYS
key:other  NO_KEYS   NO_KEYS         NO_KEYS        NO_KEYS     NO_KEYS
member     counts    null            NO_ROLE        counts      NO_ROLE
moderator  counts    null            counts         counts      counts
manager    counts    counts          NO_ROLE        counts      NO_ROLE
owner      counts    counts          NO_ROLE        counts      NO_ROLE
outsider   NOT_FOUND NOT_FOUND       NOT_FOUND      NOT_FOUND   NOT_FOUND
"""
READ_TABLE = """
           myBallot  voters    voters@anon results   results@hidden results@closed
anonymous  UNAUTH    UNAUTH    UNAUTH      UNAUTH    UNAUTH         UNAUTH
key:read   null      NO_SCOPE  NO_SCOPE    counts    null           counts
key:write  NO_SCOPE  NO_SCOPE  NO_SCOPE    NO_SCOPE  NO_SCOPE       NO_SCOPE
key:both   null      data      ANONYMOUS   counts    counts         counts
key:other  NOT_FOUND NOT_FOUND NOT_FOUND   NOT_FOUND NOT_FOUND      NOT_FOUND
member     mine      NO_PERM   NO_PERM     counts    null           counts
moderator  mine      NO_PERM   NO_PERM     counts    null           counts
manager    mine      data      ANONYMOUS   counts    counts         counts
owner      null      data      ANONYMOUS   counts    counts         counts
outsider   NOT_FOUND NOT_FOUND NOT_FOUND   NOT_FOUND NOT_FOUND      NOT_FOUND
"""
EXPORT_TABLE = """
           pollUpdated pollUpdated@hidden csv       csv@hidden csv@closed csv@anon
anonymous  UNAUTH      UNAUTH             UNAUTH    UNAUTH     UNAUTH     UNAUTH
key:read   counts      null               counts    HIDDEN     counts     counts
key:write  NO_SCOPE    NO_SCOPE           NO_SCOPE  NO_SCOPE   NO_SCOPE   NO_SCOPE
key:both   counts      counts             voters    voters     voters     counts
key:other  NOT_FOUND   NOT_FOUND          NOT_FOUND NOT_FOUND  NOT_FOUND  NOT_FOUND
member     counts      null               counts    HIDDEN     counts     counts
moderator  counts      null               counts    HIDDEN     counts     counts
manager    counts      counts             voters    voters     voters     counts
owner      counts      counts             voters    voters     voters     counts
outsider   NOT_FOUND   NOT_FOUND          NOT_FOUND NOT_FOUND  NOT_FOUND  NOT_FOUND
"""
REFUSALS = {
    "UNAUTH": "UNAUTHENTICATED",
    "NOT_FOUND": "NOT_FOUND",
    **dict.fromkeys(["NO_SCOPE", "NO_KEYS", "NO_ROLE", "NO_PERM", "ANONYMOUS", "HIDDEN"], "FORBIDDEN"),
}
ANSWERED = {"counts", "null", "mine", "data", "voters"}
CSV_STATUS = {"UNAUTHENTICATED": 401, "FORBIDDEN": 403, "NOT_FOUND": 404}


def parse_outcomes(*tables: str) -> dict[str, dict[str, str]]:
    matrix: dict[str, dict[str, str]] = {row: {} for row in ROWS}
    for table in tables:
        header, *rows = [line.split() for line in table.strip().splitlines()]
        assert [row[0] for row in rows] == ROWS, rows
        for name, *outcomes in rows:
            assert set(outcomes) <= ANSWERED | set(REFUSALS), outcomes
            matrix[name] |= dict(zip(header, outcomes, strict=True))
    assert all(list(outcomes) == list(COLUMNS) for outcomes in matrix.values()), matrix
    return matrix


VOTE_MATRIX = parse_outcomes(VOTE_TABLE, READ_TABLE, EXPORT_TABLE)


def vote_cells() -> Iterable[Any]:
    for column, (operation, _) in COLUMNS.items():
        for transport in transports_of(operation):
            for row in ROWS:
                yield pytest.param(transport, row, column, id=f"{transport}-{row}-{column}")


def own_slots() -> list[tuple[str, str, str]]:
    """(transport, row, column) of every cell that acts on a poll of its own."""
    return [
        (transport, row, column)
        for column, (operation, about) in COLUMNS.items()
        if about == "own"
        for transport in transports_of(operation)
        for row in ROWS
    ]


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
    # The vote cells'.
    vote_polls: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)  # own polls
    shared: dict[str, dict[str, Any]] = field(default_factory=dict)  # SHARED's polls, by name
    kinds: dict[str, Kind] = field(default_factory=dict)  # poll id: how it was made
    results: dict[str, tuple[dict[str, Any], Results]] = field(default_factory=dict)  # as made: admin, DB
    user_ids: dict[str, str] = field(default_factory=dict)  # row: the person's Discord id
    voters_role: int = 0  # Poll Voters
    ballots: BallotStore | None = None
    poll_log: EventLog | None = None  # the guilds' poll event streams


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


async def make_poll(
    world: World, guild: int, channel: int, state: str, kind: Kind | None = None
) -> dict[str, Any]:
    """A poll in ``state``, made by the all-seeing key (SCHEDULED ones open in an hour); a vote
    cells' poll as ``kind`` says."""
    opens_in = timedelta(hours=1) if state == "SCHEDULED" else None
    given = draft(guild, channel, opens_in=opens_in)
    if kind is not None:
        given |= {
            "options": [{"text": f"option-{token()}"} for _ in range(kind.options)],
            "maxChoices": kind.max_choices,
            "resultsVisibility": "AFTER_CLOSE" if kind.hidden else "LIVE",
            "anonymous": kind.anonymous,
            "allowedRoleIds": [str(world.voters_role)] if kind.restricted else [],
        }
    body = await as_admin(world, "createPoll", {"input": given})
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

        world.voters_role = role_id(fixture, TARGET, "Poll Voters")
        world.ballots = BallotStore(api.services.database)
        world.poll_log = EventLog(api.services.role_cache, stream=api.services.role_cache.keys.poll_events)
        for row, user_name in USERS.items():
            world.user_ids[row] = str(next(user.id for user in fixture.users if user.username == user_name))

        # Each mutation cell's own poll, in the state where the mutation would succeed.
        channels = [channel_id(fixture, TARGET, "polls"), channel_id(fixture, TARGET, "general")]
        slots = [(t, row, op) for t in TRANSPORTS for row in ROWS for op in STATE_FOR]
        limit = asyncio.Semaphore(16)

        async def made(index: int, state: str, kind: Kind | None = None) -> dict[str, Any]:
            async with limit:
                return await make_poll(world, target, channels[index % 2], state, kind)

        made_polls = await asyncio.gather(*(made(i, STATE_FOR[slot[2]]) for i, slot in enumerate(slots)))
        # The vote cells': one for each cell that votes or subscribes, then the shared ones.
        kinds = [OWN[column] for _, _, column in own_slots()] + list(SHARED.values())
        voted_in = await asyncio.gather(*(made(i, "OPEN", kind) for i, kind in enumerate(kinds)))
        world.kinds = {poll["id"]: kind for poll, kind in zip(voted_in, kinds, strict=True)}
        elsewhere = await make_poll(
            world, guild_id(fixture, OTHER), channel_id(fixture, OTHER, "general"), "OPEN"
        )
        showcase = await make_poll(world, target, world.channel, "OPEN")  # the newest: first in polls()
        opened = {
            poll["id"]: "SCHEDULED" if STATE_FOR[op] == "SCHEDULED" else "OPEN"
            for (_, _, op), poll in zip(slots, made_polls, strict=True)
        }
        opened |= dict.fromkeys(world.kinds, "OPEN")
        await settled(world, {**opened, elsewhere["id"]: "OPEN", showcase["id"]: "OPEN"})

        # Fewer at once than the polls were made: every vote is a write, and SQLite's writers
        # take turns on one lock with no queue, so on a loaded machine one of 16 could wait
        # past the busy timeout (what this setup tests is who may vote, not how many at once).
        voting = asyncio.Semaphore(4)

        async def cast(poll_id: str, kind: Kind) -> None:
            """The poll's ballots, one after the other: its voters are listed in this order."""
            async with voting:
                for row, positions in kind.ballots.items():
                    variables = {"id": poll_id, "positions": positions}
                    answer = await over_http(callers[row], VOTE_DOCUMENTS["castVote"], variables)
                    assert answer.status == 200 and not codes(answer), answer.text

        await asyncio.gather(*(cast(poll_id, kind) for poll_id, kind in world.kinds.items()))
        closing = [
            poll["id"] for (_, _, op), poll in zip(slots, made_polls, strict=True) if op == "reopenPoll"
        ]
        closing += [poll_id for poll_id, kind in world.kinds.items() if kind.closed]
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
        owned = len(own_slots())
        mine = zip(own_slots(), voted_in[:owned], strict=True)
        world.vote_polls = {slot: final[poll["id"]] for slot, poll in mine}
        world.shared = {name: final[poll["id"]] for name, poll in zip(SHARED, voted_in[owned:], strict=True)}
        found = await asyncio.gather(*(results_now(world, poll_id) for poll_id in world.kinds))
        world.results = dict(zip(world.kinds, found, strict=True))
        for poll_id, kind in world.kinds.items():  # the results are those of the ballots cast
            counts = [0] * kind.options
            for positions in kind.ballots.values():
                for position in positions:
                    counts[position] += 1
            shown, stored = world.results[poll_id]
            assert stored == Results(int(poll_id), stored.version, tuple(counts), len(kind.ballots))
            assert shown == results_of(stored), (shown, stored)
        # The ballots' VOTES_CHANGED events are out before the first pollUpdated cell listens.
        await asyncio.sleep(2 * api.services.events.coalesce)
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


# -- the vote cells: one cell -----------------------------------------------------------------------

# What only an answer with counts in it holds: Poll.results' keys, or the CSV's.
COUNT_MARKERS = ['"votes"', '"voters"', "position,option,votes", "\nvoters,"]


def results_of(stored: Results) -> dict[str, Any]:
    """``stored`` as Poll.results shows it."""
    options = [{"position": position, "votes": votes} for position, votes in enumerate(stored.counts)]
    return {"voters": stored.voters, "version": stored.version, "options": options}


async def results_now(world: World, poll_id: str) -> tuple[dict[str, Any], Results]:
    """The poll's results as the all-seeing key reads them, and as the database keeps them."""
    answer = await over_http(world.admin, VOTE_DOCUMENTS["results"], {"id": poll_id})
    assert answer.status == 200 and not codes(answer), answer.text
    assert world.ballots is not None
    stored = (await world.ballots.results([int(poll_id)]))[int(poll_id)]
    shown: dict[str, Any] = answer.body["data"]["poll"]["results"]
    return shown, stored


async def run(world: World, who: Who, transport: str, query: str, variables: dict[str, Any]) -> Answer:
    if transport == "http":
        return await over_http(who, query, variables)
    return await over_ws(world.api, who, query, variables)


async def over_csv(who: Who, poll_id: int | str) -> Answer:
    caller = who.caller
    headers = {**caller.headers, **who.http_headers}
    response = await caller.client.get(f"/polls/{poll_id}/results.csv", headers=headers)
    refused = response.headers.get("content-type", "").startswith("application/json")
    return Answer(
        response.status_code, response.json() if refused else {}, response.text, dict(response.headers)
    )


async def over_subscription(
    world: World, who: Who, variables: dict[str, Any], trigger: Callable[[], Awaitable[None]] | None
) -> Answer:
    """graphql-transport-ws: subscribe to pollUpdated, ``trigger`` a change, and the first
    message: a ``next`` with data, or the error (every message up to ``complete``)."""
    caller = who.caller
    received: list[str] = []
    body: dict[str, Any] = {}
    async with websockets.connect(
        world.api.ws_url,
        subprotocols=[Subprotocol("graphql-transport-ws")],
        additional_headers=caller.ws_headers,
    ) as ws:
        init: dict[str, Any] = {"type": "connection_init"}
        if caller.init_payload is not None:
            init["payload"] = caller.init_payload
        await ws.send(json.dumps(init))
        async with asyncio.timeout(10):
            received.append(str(await ws.recv()))
            assert json.loads(received[-1])["type"] == "connection_ack", received
            payload = {"query": VOTE_DOCUMENTS["pollUpdated"], "variables": variables}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            if trigger is not None:
                await trigger()
            while True:
                received.append(str(await ws.recv()))
                message = json.loads(received[-1])
                if message["type"] == "next":
                    body = message["payload"]
                    if not body.get("errors"):
                        break  # the cell's message; the subscription goes on
                elif message["type"] == "error":
                    body = {"data": None, "errors": message["payload"]}
                    break
                elif message["type"] == "complete":
                    break
                else:
                    assert message["type"] == "ping", message
    return Answer(200, body, "\n".join(received))


async def voter_pages(
    world: World, who: Who, transport: str, poll_id: int | str
) -> tuple[Answer, list[dict[str, Any]]]:
    """Who voted for option 0, a page of one at a time following endCursor (three at most): the
    first answer (holding every page's bytes), and the pages."""
    pages: list[dict[str, Any]] = []
    answers: list[Answer] = []
    after = None
    while len(pages) < 3:
        answer = await run(
            world, who, transport, VOTE_DOCUMENTS["voters"], {"id": str(poll_id), "after": after}
        )
        answers.append(answer)
        poll = (answer.body.get("data") or {}).get("poll")
        if codes(answer) or poll is None:
            break
        pages.append(poll["voters"])
        if not poll["voters"]["pageInfo"]["hasNextPage"]:
            break
        after = poll["voters"]["pageInfo"]["endCursor"]
    first = answers[0]
    return Answer(first.status, first.body, "\n".join(a.text for a in answers), first.headers), pages


async def ask_about(
    world: World,
    who: Who,
    transport: str,
    operation: str,
    poll_id: int | str,
    guild: int,
    trigger: Callable[[], Awaitable[None]] | None = None,
) -> Answer:
    """``operation`` about poll ``poll_id`` (of ``guild``, for pollUpdated)."""
    if operation == "csv":
        return await over_csv(who, poll_id)
    if operation == "pollUpdated":
        # Replayed from the newest event on: the change triggered after subscribing comes first,
        # whether it is sent before the live subscription starts or after.
        assert world.poll_log is not None
        since = await world.poll_log.latest_id(world.target)
        assert since is not None
        about = {"g": str(guild), "p": str(poll_id), "since": since}
        return await over_subscription(world, who, about, trigger)
    if operation == "voters":
        return (await voter_pages(world, who, transport, poll_id))[0]
    variables: dict[str, Any] = {"id": str(poll_id)}
    if operation == "castVote":
        variables["positions"] = CAST
    return await run(world, who, transport, VOTE_DOCUMENTS[operation], variables)


async def rename(world: World, poll: dict[str, Any]) -> str:
    """A change of ``poll`` by the all-seeing key: its new name."""
    name = f"renamed-{token()}"
    variables = {"id": poll["id"], "v": poll["version"], "input": {"name": name}}
    body = await as_admin(world, "updatePoll", variables)
    assert "errors" not in body, body
    return name


def expected_csv(world: World, poll: dict[str, Any], named: bool) -> str:
    """The export of ``poll``: counts, and who chose what when ``named`` (ballot by ballot)."""
    kind = world.kinds[poll["id"]]
    _, stored = world.results[poll["id"]]
    texts = [option["text"] for option in poll["options"]]
    lines = ["position,option,votes", *(f"{p},{text},{stored.counts[p]}" for p, text in enumerate(texts))]
    lines += ["", f"voters,{stored.voters}"]
    if named:
        lines += ["", "user_id,position,option"]
        for position, text in enumerate(texts):
            chose = [row for row, positions in kind.ballots.items() if position in positions]
            lines += [f"{world.user_ids[row]},{position},{text}" for row in chose]
    return "\r\n".join(lines) + "\r\n"


def check_vote_refusal(
    world: World, row: str, operation: str, expected: str, answer: Answer, poll: dict[str, Any]
) -> list[str]:
    code = REFUSALS[expected]
    status = CSV_STATUS[code] if operation == "csv" else 200
    got = f"HTTP {answer.status} {answer.text[:400]!r}"
    if answer.status != status or codes(answer) != [code] or answer.body.get("data") is not None:
        return [f"expected {expected} ({code}, HTTP {status}) and no data, got {got}"]
    message = answer.body["errors"][0]["message"]
    subject = f"Guild {world.target}" if operation == "pollUpdated" else f"Poll {poll['id']}"
    exact = {
        "NOT_FOUND": f"{subject} does not exist.",
        "NO_KEYS": "An API key never votes on anyone's behalf; people vote signed in with Discord.",
        "NO_ROLE": f"Only members with one of the roles <@&{world.voters_role}> may vote in poll"
        f" {poll['id']}.",
        "ANONYMOUS": f"Poll {poll['id']} is anonymous: who voted is never shown, to anyone.",
        "HIDDEN": f"Poll {poll['id']}'s results are hidden until it closes.",
    }
    words = {
        "NO_SCOPE": f"lacks the {READ if row == 'key:write' else WRITE} scope",
        "NO_PERM": "Manage Server",
    }
    if expected in exact and message != exact[expected]:
        return [f"{expected} should say {exact[expected]!r}, got {message!r}"]
    if expected in words and words[expected] not in message:
        return [f"{expected} should say {words[expected]!r}: {message!r}"]
    return []


async def check_vote_data(
    world: World,
    row: str,
    operation: str,
    expected: str,
    answer: Answer,
    poll: dict[str, Any],
    pages: list[dict[str, Any]],
    renamed: list[str],
) -> list[str]:
    got = f"HTTP {answer.status} {answer.text[:400]!r}"
    kind = world.kinds[poll["id"]]
    shown, stored = world.results[poll["id"]]
    if operation == "csv":
        export = expected_csv(world, poll, named=expected == "voters")
        if answer.status != 200 or answer.text != export:
            return [f"expected the CSV {export!r}, got {got}"]
        headers = {key: answer.headers.get(key) for key in ("content-type", "content-disposition")}
        file = f'attachment; filename="poll-{poll["id"]}-results.csv"'
        if headers != {"content-type": "text/csv; charset=utf-8", "content-disposition": file}:
            return [f"the CSV came with {headers}"]
        return []
    data = answer.body.get("data")
    if answer.status != 200 or codes(answer) or not data:
        return [f"expected {expected}, got {got}"]
    if operation == "results":
        wanted = {
            "id": poll["id"],
            "status": poll["status"],
            "resultsVisibility": poll["resultsVisibility"],
            "results": shown if expected == "counts" else None,
        }
        return [] if data["poll"] == wanted else [f"read {data['poll']}, expected {wanted}"]
    if operation == "myBallot":
        wanted = {"id": poll["id"], "myBallot": kind.ballots[row] if expected == "mine" else None}
        return [] if data["poll"] == wanted else [f"read {data['poll']}, expected {wanted}"]
    if operation == "voters":
        listed = [[node["userId"] for node in page["nodes"]] for page in pages]
        wanted_ids = [[world.user_ids[row]] for row, positions in kind.ballots.items() if 0 in positions]
        more = [page["pageInfo"]["hasNextPage"] for page in pages]
        problems = []
        if listed != wanted_ids or more != [True] * (len(wanted_ids) - 1) + [False]:
            problems.append(
                f"voters of option 0 page by page: {listed} (more: {more}), expected {wanted_ids}"
            )
        for page in pages:
            for node in page["nodes"]:
                datetime.fromisoformat(node["votedAt"])
        return problems
    if operation == "pollUpdated":
        message = data["pollUpdated"]
        wanted = {
            "guildId": str(world.target),
            "pollId": poll["id"],
            "kind": "UPDATED",
            "eventId": message.get("eventId"),
            "poll": {
                "id": poll["id"],
                "name": renamed[0] if renamed else None,
                "status": "OPEN",
                "resultsVisibility": poll["resultsVisibility"],
                "results": shown if expected == "counts" else None,
            },
        }
        if message != wanted or not isinstance(message["eventId"], str):
            return [f"the first message is {message}, expected {wanted}"]
        return []
    # castVote, retractVote: the caller's ballot cast before the tests becomes CAST, or nothing.
    before = kind.ballots.get(row, [])
    after = [] if operation == "retractVote" else CAST
    counts = list(stored.counts)
    for position in before:
        counts[position] -= 1
    for position in after:
        counts[position] += 1
    voters = stored.voters + (1 if after and not before else 0) - (1 if before and not after else 0)
    now = Results(stored.poll_id, stored.version + 1, tuple(counts), voters)
    wanted = {
        "id": poll["id"],
        "myBallot": after or None,
        "results": results_of(now) if expected == "counts" else None,
    }
    problems = (
        [] if data[operation] == wanted else [f"{operation} answered {data[operation]}, expected {wanted}"]
    )
    read = await results_now(world, poll["id"])
    if read != (results_of(now), now):
        problems.append(f"after {operation} the results read {read}, expected {now}")
    return problems


@pytest.mark.parametrize(("transport", "row", "column"), list(vote_cells()))
async def test_vote_access(world: World, transport: str, row: str, column: str) -> None:
    """One vote cell: caller ``row`` does ``column``'s operation over ``transport`` about its
    poll, and gets exactly what the matrix says. No count of hidden results is in an answer
    that may not show them, no voter's id is in an answer that may not name them (nor ever
    one about an anonymous poll); a refusal holds no poll's values, cannot be told from the
    answer about a poll (or guild) that does not exist when the caller may not see the real
    one, and a refused vote changed no result."""
    operation, about = COLUMNS[column]
    expected = VOTE_MATRIX[row][column]
    who = world.callers[row]
    poll = world.vote_polls[(transport, row, column)] if about == "own" else world.shared[about]
    pages: list[dict[str, Any]] = []
    renamed: list[str] = []

    async def change() -> None:
        renamed.append(await rename(world, poll))

    if operation == "voters":
        answer, pages = await voter_pages(world, who, transport, poll["id"])
    else:
        answer = await ask_about(world, who, transport, operation, poll["id"], world.target, change)

    refused = expected in REFUSALS
    if refused:
        problems = check_vote_refusal(world, row, operation, expected, answer, poll)
        leaked = [value for value in [*world.secrets, *renamed] if value in answer.text]
        if leaked:
            problems.append(f"the refusal holds poll field values {leaked}")
    else:
        problems = await check_vote_data(world, row, operation, expected, answer, poll, pages, renamed)
    leaked = [value for value in world.elsewhere_secrets if value in answer.text]
    if leaked:
        problems.append(f"the answer holds Quiet Corner's poll's values {leaked}")

    # Counts of hidden results only where they may be seen (and the search finds them there).
    hidden = poll["resultsVisibility"] == "AFTER_CLOSE" and poll["status"] == "OPEN"
    markers = [marker for marker in COUNT_MARKERS if marker in answer.text]
    if hidden and expected in ("counts", "voters"):
        if not markers:
            problems.append("the search for counts finds none in an answer that shows them")
    elif hidden and markers:
        problems.append(f"the answer holds counts of hidden results ({markers}): {answer.text[:400]!r}")
    # Who voted only where they may be named (and the search finds them there).
    kind = world.kinds[poll["id"]]
    named = {caller for caller, user in world.user_ids.items() if user in answer.text}
    if operation == "voters" and expected == "data":
        listed = {caller for caller, positions in kind.ballots.items() if 0 in positions}
    else:
        listed = set(kind.ballots) if expected == "voters" else set()
    if named != listed:
        problems.append(f"the answer names {sorted(named)} by Discord id, expected {sorted(listed)}")

    if refused:
        if operation in VOTES:
            read = await results_now(world, poll["id"])
            if read != world.results[poll["id"]]:
                problems.append(
                    f"the refused {operation} changed the results: {world.results[poll['id']]} -> {read}"
                )
        # An answer that may not depend on the poll (or guild): the same about one that does not exist.
        if row not in READERS or expected == "NO_KEYS":
            ghost = await ask_about(world, who, transport, operation, MADE_UP_POLL, MADE_UP_GUILD)
            subject, made_up = (
                (world.target, MADE_UP_GUILD) if operation == "pollUpdated" else (poll["id"], MADE_UP_POLL)
            )
            if normalized(ghost, made_up) != normalized(answer, subject):
                problems.append(
                    f"the real {subject}'s answer {answer.text[:300]!r} differs from made-up "
                    f"{made_up}'s {ghost.text[:300]!r}"
                )
            if expected == "NOT_FOUND":
                # ... and as the answer to a caller who could see it (vote in it), were it there.
                reader = world.callers["owner"] if operation in VOTES else world.admin
                missing = await ask_about(world, reader, transport, operation, MADE_UP_POLL, MADE_UP_GUILD)
                if normalized(missing, made_up) != normalized(answer, subject):
                    problems.append(
                        f"the refusal {answer.text[:300]!r} differs from one about something that does"
                        f" not exist, {missing.text[:300]!r}"
                    )
    assert not problems, f"{transport} / {row} / {column}:\n" + "\n".join(problems)
