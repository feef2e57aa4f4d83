"""Who may read what: every kind of caller against every query and the subscription, over real
HTTP, WebSockets and SSE, with people logged in through the real Discord (sandbox) OAuth flow.

The target guild is Polly Playground: alice owns it (and is an administrator there), carol is a
plain member, erin is not a member. Each refused answer must leak nothing of the guild and must
read exactly like the answer for a guild that does not exist.

Each test runs against one API worker and against two sharing the port: every WebSocket, and
each caller's HTTP connection, goes to the worker the kernel picks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import pytest_asyncio
import websockets
from websockets.typing import Subprotocol

from app.access.cookies import SESSION_COOKIE
from app.sandbox.fixture import Fixture
from app.sandbox.snowflake import snowflake_at
from app.storage.api_keys import parse_token
from tests.conftest import (
    RunningApi,
    RunningBot,
    SandboxHttp,
    create_key,
    guild_id,
    revoke_key,
    wait_until,
)

pytestmark = [pytest.mark.timeout(60), pytest.mark.workers_1_and_2]

TARGET = "Polly Playground"
OTHER = "Quiet Corner"
# A well-formed guild id that no fixture guild has (and no Discord guild, in the sandbox).
MADE_UP = snowflake_at(1_704_067_200_000 + 777_777)

# -- logging in as a person does ------------------------------------------------------------------


def browser(api: RunningApi) -> httpx.AsyncClient:
    """A client that keeps cookies and follows no redirect by itself (so each hop is seen)."""
    # Generous: on a loaded machine a vote queued behind a burst may take a while.
    return httpx.AsyncClient(base_url=api.url, timeout=60, follow_redirects=False)


async def start_login(client: httpx.AsyncClient, api: RunningApi, next_path: str | None = "/") -> str:
    """GET /auth/login: the sandbox's authorize URL it redirects to (the login cookie is kept)."""
    response = await client.get("/auth/login", params={} if next_path is None else {"next": next_path})
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(f"{api.sandbox.url}/oauth2/authorize?"), location
    return location


async def approve(client: httpx.AsyncClient, authorize_url: str, user_name: str) -> str:
    """The sandbox's consent screen, approved as ``user_name``: the callback URL it sends back to."""
    response = await client.get(f"{authorize_url}&{urlencode({'user': user_name})}")
    assert response.status_code == 302, response.text
    return response.headers["location"]


async def log_in(api: RunningApi, user_name: str, *, next_path: str = "/") -> httpx.AsyncClient:
    """A client logged in as fixture user ``user_name`` through /auth/login, the sandbox's
    /oauth2/authorize and /auth/callback, holding the polly_session cookie."""
    client = browser(api)
    try:
        callback = await approve(client, await start_login(client, api, next_path), user_name)
        assert callback.startswith(f"{api.url}/auth/callback?"), callback
        response = await client.get(callback)
        assert response.status_code == 303, response.text
        assert client.cookies.get(SESSION_COOKIE), "the callback set no session cookie"
    except BaseException:
        await client.aclose()
        raise
    return client


# -- callers ----------------------------------------------------------------------------------------


@dataclass
class Caller:
    """How one principal presents itself on each transport."""

    name: str
    client: httpx.AsyncClient  # cookies, for people
    headers: dict[str, str] = field(default_factory=dict)  # Authorization, for keys
    ws_headers: dict[str, str] = field(default_factory=dict)  # cookie and Origin, for people
    init_payload: dict[str, str] | None = None  # the key, in connection_init


def key_caller(api: RunningApi, name: str, token: str) -> Caller:
    bearer = f"Bearer {token}"
    return Caller(name, browser(api), {"Authorization": bearer}, init_payload={"authorization": bearer})


def user_caller(api: RunningApi, name: str, client: httpx.AsyncClient) -> Caller:
    cookie = client.cookies[SESSION_COOKIE]
    return Caller(name, client, ws_headers={"Cookie": f"{SESSION_COOKIE}={cookie}", "Origin": api.url})


def key_id(token: str) -> str:
    parsed = parse_token(token)
    assert parsed is not None
    return parsed[0]


# -- operations -------------------------------------------------------------------------------------

VIEWER = "{ viewer { kind id name scopes guilds { id name owner permissions canReadRoles canManage } } }"
QUERIES = {
    "apiVersion": "{ apiVersion }",
    "viewer": VIEWER,
    "guildRoles": "query($g: ID!) { guildRoles(guildId: $g) { id name } }",
    "pingableRoles": "query($g: ID!) { pingableRoles(guildId: $g) { id name } }",
    "validateRoles": "query($g: ID!, $r: [ID!]!) { validateRoles(guildId: $g, roleIds: $r) "
    "{ roleId valid canPing role { id name } } }",
    "botGuilds": "{ botGuilds { id name channels { id name } } }",
}
SUBSCRIPTION = """subscription($g: ID!, $since: String) {
  guildRolesChanged(guildId: $g, since: $since) { guildId kind pingableRoles { id name } }
}"""
GUILD_OPERATIONS = {"guildRoles", "pingableRoles", "validateRoles", "ws", "sse"}
OPERATIONS = [*QUERIES, "ws", "sse"]


@dataclass
class Answer:
    """What came back, the same shape for every transport."""

    status: int  # HTTP status (200 for WebSocket messages)
    body: dict[str, Any]  # {"data": ..., "errors": [...]}
    text: str  # every byte received, for the leak check
    headers: dict[str, str] = field(default_factory=dict)
    close_code: int | None = None  # WebSocket closed before answering

    @property
    def codes(self) -> list[str]:
        return [error.get("extensions", {}).get("code") for error in self.body.get("errors") or []]


async def over_http(caller: Caller, query: str, variables: dict[str, Any]) -> Answer:
    response = await caller.client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=caller.headers
    )
    return Answer(response.status_code, response.json(), response.text, dict(response.headers))


async def over_websocket(api: RunningApi, caller: Caller, variables: dict[str, Any]) -> Answer:
    """graphql-transport-ws: connection_init (with the key, if any), subscribe, the first answer."""
    url = api.ws_url
    received: list[str] = []
    try:
        ws = await websockets.connect(
            url, subprotocols=[Subprotocol("graphql-transport-ws")], additional_headers=caller.ws_headers
        )
    except websockets.InvalidStatus as refused:  # the handshake itself was turned away
        response = refused.response
        return Answer(response.status_code, {}, response.body.decode(), dict(response.headers))
    async with ws:
        try:
            init: dict[str, Any] = {"type": "connection_init"}
            if caller.init_payload is not None:
                init["payload"] = caller.init_payload
            await ws.send(json.dumps(init))
            async with asyncio.timeout(5):
                received.append(str(await ws.recv()))
                assert json.loads(received[-1])["type"] == "connection_ack", received
                subscribe = {"query": SUBSCRIPTION, "variables": variables}
                await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
                while True:
                    received.append(str(await ws.recv()))
                    message = json.loads(received[-1])
                    if message["type"] == "next":
                        return Answer(200, message["payload"], "\n".join(received))
                    if message["type"] == "error":
                        return Answer(200, {"data": None, "errors": message["payload"]}, "\n".join(received))
                    assert message["type"] == "ping", message
        except websockets.ConnectionClosed:
            return Answer(200, {}, "\n".join(received), close_code=ws.close_code)


async def over_sse(caller: Caller, variables: dict[str, Any]) -> Answer:
    """POST /graphql with Accept: text/event-stream: the first event, or the refusal."""
    headers = {**caller.headers, "Accept": "text/event-stream"}
    body = {"query": SUBSCRIPTION, "variables": variables}
    async with caller.client.stream("POST", "/graphql", json=body, headers=headers) as response:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            raw = (await response.aread()).decode()
            return Answer(response.status_code, json.loads(raw), raw, dict(response.headers))
        lines: list[str] = []
        async with asyncio.timeout(5):
            async for line in response.aiter_lines():
                lines.append(line)
                if line.startswith("data:") and line[5:].strip():
                    return Answer(response.status_code, json.loads(line[5:]), "\n".join(lines))
    raise AssertionError(f"the event stream ended without an event: {lines}")


async def run(api: RunningApi, caller: Caller, operation: str, guild: int, role_ids: list[int]) -> Answer:
    variables: dict[str, Any] = {"g": str(guild)}
    if operation in ("ws", "sse"):
        variables["since"] = "0-0"  # start with the current list: an answer at once
        return await (
            over_websocket(api, caller, variables) if operation == "ws" else over_sse(caller, variables)
        )
    if operation == "validateRoles":
        variables["r"] = [str(role) for role in role_ids]
    elif operation not in GUILD_OPERATIONS:
        variables = {}
    return await over_http(caller, QUERIES[operation], variables)


# -- the matrix -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    kind: str  # "data", "null", "error" (HTTP 200 with a code), "http" (the whole request refused)
    code: str | None = None
    status: int = 200

    def __str__(self) -> str:
        return self.kind if self.code is None else f"{self.kind} {self.code} ({self.status})"


DATA = Expect("data")  # HTTP 200, data about the target, no errors
NULL = Expect("null")  # HTTP 200, {"data": {"viewer": null}}
REFUSED = Expect("http", "UNAUTHENTICATED", 401)  # the whole request, with WWW-Authenticate
CELLS = {
    "data": DATA,
    "null": NULL,
    "UNAUTH": Expect("error", "UNAUTHENTICATED"),
    "NOT_FOUND": Expect("error", "NOT_FOUND"),
    "FORBIDDEN": Expect("error", "FORBIDDEN"),
    "401": REFUSED,
}
NOT_FOUND = CELLS["NOT_FOUND"]

# The target is Polly Playground. member: carol; manager: alice (owner, Admins); non-member: erin.
# key:guild is made for the target (roles:read), key:other for Quiet Corner (roles:read),
# key:no-scope for the target with polls:read only. A WebSocket has no status to refuse with:
# a key that is no good gets UNAUTHENTICATED on its operation instead.
TABLE = """
              apiVersion viewer   guildRoles pingableRoles validateRoles botGuilds  ws         sse
anonymous     data       null     UNAUTH     UNAUTH        UNAUTH        UNAUTH     UNAUTH     UNAUTH
member        data       data     data       data          data          data       data       data
manager       data       data     data       data          data          data       data       data
non-member    data       data     NOT_FOUND  NOT_FOUND     NOT_FOUND     data       NOT_FOUND  NOT_FOUND
key:guild     data       data     data       data          data          data       data       data
key:other     data       data     NOT_FOUND  NOT_FOUND     NOT_FOUND     data       NOT_FOUND  NOT_FOUND
key:no-scope  data       data     FORBIDDEN  FORBIDDEN     FORBIDDEN     FORBIDDEN  FORBIDDEN  FORBIDDEN
key:revoked   401        401      401        401           401           401        UNAUTH     401
key:garbage   401        401      401        401           401           401        UNAUTH     401
"""


def parse_table(table: str) -> dict[str, dict[str, Expect]]:
    header, *rows = [line.split() for line in table.strip().splitlines()]
    assert header == OPERATIONS, header
    return {name: dict(zip(header, (CELLS[cell] for cell in cells), strict=True)) for name, *cells in rows}


MATRIX = parse_table(TABLE)

# Which of the bot's guilds each one may list (lowest ids first), and how viewer shows the target.
BOT_GUILDS = {
    "member": ["Polly Playground", "Polly HQ"],  # carol
    "manager": ["Polly Playground", "Quiet Corner"],  # alice
    "non-member": ["Quiet Corner", "Big Guild"],  # erin (Elsewhere has no bot)
    "key:guild": ["Polly Playground"],
    "key:other": ["Quiet Corner"],
}
VIEWER_KIND = {"member": "USER", "manager": "USER", "non-member": "USER"}
VIEWER_TARGET: dict[str, dict[str, Any] | None] = {
    "member": {"owner": False, "canReadRoles": True, "canManage": False},
    "manager": {"owner": True, "canReadRoles": True, "canManage": True},
    "non-member": None,
    "key:guild": {
        "name": "Polly Playground",
        "owner": False,
        "permissions": "0",
        "canReadRoles": True,
        "canManage": False,
    },
    "key:other": None,
    "key:no-scope": {"name": None, "canReadRoles": False, "canManage": False},
}
KEY_SCOPES = {"key:guild": ["roles:read"], "key:other": ["roles:read"], "key:no-scope": ["polls:read"]}
# Callers that may not read the target: nothing of it may reach them, whatever they ask.
OUTSIDERS = {"anonymous", "non-member", "key:other", "key:no-scope", "key:revoked", "key:garbage"}
USERS = {"member": "carol", "manager": "alice", "non-member": "erin"}


@dataclass
class World:
    api: RunningApi
    target: int
    role_ids: list[int]  # the target's, without @everyone (whose id is the guild's)
    secrets: list[str]  # strings that only an answer about the target could hold


@pytest_asyncio.fixture
async def world(
    api: RunningApi, bot_factory: Callable[[str], Awaitable[RunningBot]], redis_url: str, fixture: Fixture
) -> World:
    await bot_factory(redis_url)  # botGuilds lists what the gateway bot reported
    target = guild_id(fixture, TARGET)
    guild = next(g for g in fixture.guilds if g.id == target)
    role_ids = [role.id for role in guild.roles if role.id != target]
    assert MADE_UP not in {g.id for g in fixture.guilds}
    secrets = [TARGET, *(json.dumps(role.name) for role in guild.roles), *map(str, role_ids)]
    secrets += [str(channel.id) for channel in guild.channels]
    return World(api, target, role_ids, secrets)


@pytest_asyncio.fixture
async def callers() -> AsyncIterator[list[Caller]]:
    made: list[Caller] = []
    yield made
    for caller in made:
        await caller.client.aclose()


async def make_caller(name: str, world: World, fixture: Fixture) -> Caller:
    api = world.api
    if name in USERS:
        return user_caller(api, name, await log_in(api, USERS[name]))
    if name == "anonymous":
        return Caller(name, browser(api))
    if name == "key:garbage":
        return key_caller(api, name, "polly_nosuchkey_" + "x" * 43)
    guild, scopes = {
        "key:guild": (world.target, ["roles:read"]),
        "key:other": (guild_id(fixture, OTHER), ["roles:read"]),
        "key:no-scope": (world.target, ["polls:read"]),
        "key:revoked": (world.target, ["roles:read"]),
    }[name]
    token = await create_key(api.settings, [guild], scopes, name=name)
    if name == "key:revoked":
        await api.services.keys.revoke(key_id(token))
    return key_caller(api, name, token)


def normalized(answer: Answer, guild: int) -> tuple[int, str, int | None]:
    """The answer's bytes with the guild id it was asked about blanked out, to compare two."""
    return answer.status, answer.text.replace(str(guild), "<guild>"), answer.close_code


def check(name: str, operation: str, expect: Expect, answer: Answer, world: World) -> list[str]:
    """Every way ``answer`` differs from ``expect``; empty when it matches."""
    problems: list[str] = []
    where = f"{name} / {operation}: expected {expect}, got HTTP {answer.status} {answer.text[:300]!r}"
    data = answer.body.get("data")
    if expect.kind == "http":
        if answer.status != expect.status or answer.codes != [expect.code]:
            problems.append(where)
        elif "data" in answer.body:
            problems.append(f"{where} (a refused request carries no data key)")
        elif "Bearer" not in answer.headers.get("www-authenticate", ""):
            problems.append(f"{where} (no WWW-Authenticate: Bearer)")
    elif expect.kind == "error":
        field_data = (data or {}).get(operation) if operation not in ("ws", "sse") else data
        if answer.status != 200 or answer.codes != [expect.code] or field_data:
            problems.append(where)
    elif expect.kind == "null":
        if answer.status != 200 or answer.codes or answer.body != {"data": {operation: None}}:
            problems.append(where)
    else:
        if answer.status != 200 or answer.codes or not data:
            problems.append(where)
        else:
            problems += check_data(name, operation, data, world)
    if name in OUTSIDERS:
        leaked = [secret for secret in world.secrets if secret in answer.text]
        if leaked:
            problems.append(f"{name} / {operation}: the answer leaks {leaked}: {answer.text[:300]!r}")
    return problems


def check_data(name: str, operation: str, data: dict[str, Any], world: World) -> list[str]:
    where = f"{name} / {operation}"
    target, roles = str(world.target), {str(role) for role in world.role_ids}
    if operation == "apiVersion":
        return [] if data["apiVersion"] else [f"{where}: empty apiVersion"]
    if operation == "guildRoles":
        ids = {role["id"] for role in data["guildRoles"]}
        return [] if ids == roles | {target} else [f"{where}: roles {ids} are not the target's {roles}"]
    if operation == "pingableRoles":
        ids = {role["id"] for role in data["pingableRoles"]}
        return [] if ids and ids <= roles else [f"{where}: {ids} are not roles of the target"]
    if operation == "validateRoles":
        results = data["validateRoles"]
        valid = [result["roleId"] for result in results if result["valid"]]
        wanted = [str(role) for role in world.role_ids]
        return [] if valid == wanted else [f"{where}: {results}"]
    if operation in ("ws", "sse"):
        change = data["guildRolesChanged"]
        ids = {role["id"] for role in change["pingableRoles"]}
        good = change["guildId"] == target and change["kind"] == "GUILD_RESYNCED" and ids and ids <= roles
        return [] if good else [f"{where}: {change}"]
    if operation == "botGuilds":
        names = [guild["name"] for guild in data["botGuilds"]]
        return [] if names == BOT_GUILDS[name] else [f"{where}: lists {names}, not {BOT_GUILDS[name]}"]
    viewer = data["viewer"]
    problems = []
    kind = VIEWER_KIND.get(name, "API_KEY")
    if viewer["kind"] != kind or viewer["scopes"] != KEY_SCOPES.get(name, []):
        problems.append(f"{where}: {viewer['kind']} with scopes {viewer['scopes']}")
    entry = next((guild for guild in viewer["guilds"] if guild["id"] == target), None)
    shown = VIEWER_TARGET[name]
    if shown is None:
        if entry is not None:
            problems.append(f"{where}: lists the target guild {entry}")
    elif entry is None or any(entry[key] != value for key, value in shown.items()):
        problems.append(f"{where}: the target guild is {entry}, expected {shown}")
    return problems


@pytest.mark.parametrize("name", list(MATRIX))
async def test_access_matrix(name: str, world: World, callers: list[Caller], fixture: Fixture) -> None:
    """One row of the matrix: this caller against every query and the subscription (WebSocket
    and SSE). Refused answers hold nothing of the target guild and read exactly like the answer
    about a guild that does not exist."""
    api = world.api
    caller = await make_caller(name, world, fixture)
    callers.append(caller)
    # A guild that really does not exist, asked by a key made for it: the answer to imitate.
    ghost = key_caller(api, "ghost", await create_key(api.settings, [MADE_UP], ["roles:read"], name="ghost"))
    callers.append(ghost)

    problems: list[str] = []
    for operation, expect in MATRIX[name].items():
        answer = await run(api, caller, operation, world.target, world.role_ids)
        problems += check(name, operation, expect, answer, world)
        if operation not in GUILD_OPERATIONS or expect.kind in ("data", "null"):
            continue
        # Refused: the same words, byte for byte, as for a made-up guild.
        made_up = await run(api, caller, operation, MADE_UP, world.role_ids)
        if normalized(made_up, MADE_UP) != normalized(answer, world.target):
            problems.append(
                f"{name} / {operation}: the target guild's answer {answer.text[:300]!r} differs from a "
                f"made-up guild's {made_up.text[:300]!r}"
            )
        if expect == NOT_FOUND:
            missing = await run(api, ghost, operation, MADE_UP, world.role_ids)
            if normalized(missing, MADE_UP) != normalized(answer, world.target):
                problems.append(
                    f"{name} / {operation}: the refusal {answer.text[:300]!r} can be told apart from a "
                    f"guild that does not exist, {missing.text[:300]!r}"
                )
    assert not problems, "\n".join(problems)


# -- changes over time ----------------------------------------------------------------------------

GUILD_ROLES = QUERIES["guildRoles"]


async def test_a_member_who_leaves_the_guild_is_refused_once_the_cache_expires(
    api_factory: Callable[..., Awaitable[RunningApi]], http: SandboxHttp, fixture: Fixture
) -> None:
    api = await api_factory(viewer_cache_ttl=1)
    target = guild_id(fixture, TARGET)
    bob = next(user.id for user in fixture.users if user.username == "bob")
    async with contextlib.aclosing(await log_in(api, "bob")) as client:
        caller = user_caller(api, "bob", client)
        before = await over_http(caller, GUILD_ROLES, {"g": str(target)})
        assert before.status == 200 and before.body["data"]["guildRoles"], before.text

        await http.control("DELETE", f"/_sandbox/guilds/{target}/members/{bob}")
        latest: list[Answer] = []

        async def refused() -> bool:
            latest[:] = [await over_http(caller, GUILD_ROLES, {"g": str(target)})]
            return "NOT_FOUND" in latest[0].codes

        await wait_until(refused, within=5)
        answer = latest[0]
        made_up = await over_http(caller, GUILD_ROLES, {"g": str(MADE_UP)})
        assert normalized(answer, target) == normalized(made_up, MADE_UP)
        assert '"Moderators"' not in answer.text
        viewer = await over_http(caller, VIEWER, {})
        assert str(target) not in [g["id"] for g in viewer.body["data"]["viewer"]["guilds"]]
        ws = await over_websocket(api, caller, {"g": str(target), "since": "0-0"})
        assert ws.codes == ["NOT_FOUND"], ws.text

        # Back in the guild: back in access, with the same login.
        await http.control("PUT", f"/_sandbox/guilds/{target}/members/{bob}", {})

        async def readable() -> bool:
            again = await over_http(caller, GUILD_ROLES, {"g": str(target)})
            return again.status == 200 and not again.codes

        await wait_until(readable, within=5)


async def test_a_revoked_key_fails_on_its_next_request(
    api: RunningApi, redis_url: str, fixture: Fixture
) -> None:
    target = guild_id(fixture, TARGET)
    token = await create_key(api.settings, [target], ["roles:read"], name="soon revoked")
    caller = key_caller(api, "key", token)
    async with caller.client:
        for _ in range(2):  # the key's record and the answer are cached now
            answer = await over_http(caller, GUILD_ROLES, {"g": str(target)})
            assert answer.status == 200 and answer.body["data"]["guildRoles"], answer.text

        assert b"Revoked API key" in await revoke_key(api.settings, redis_url, token)

        answer = await over_http(caller, GUILD_ROLES, {"g": str(target)})
        assert answer.status == 401 and answer.codes == ["UNAUTHENTICATED"], answer.text
        assert "revoked" in answer.body["errors"][0]["message"]
        assert 'error="invalid_token"' in answer.headers["www-authenticate"]
        assert '"Moderators"' not in answer.text
        ws = await over_websocket(api, caller, {"g": str(target), "since": "0-0"})
        assert ws.codes == ["UNAUTHENTICATED"], ws.text


async def test_a_cached_answer_never_reaches_another_access_scope(api: RunningApi, fixture: Fixture) -> None:
    """The response cache is keyed by access scope: the same request bytes from a caller who may
    not see the guild get NOT_FOUND, never the copy cached for one who may."""
    playground = guild_id(fixture, "Polly Playground")
    quiet = guild_id(fixture, "Quiet Corner")
    body = {
        "query": "query($g: ID!) { guildRoles(guildId: $g) { id name } }",
        "variables": {"g": str(playground)},
    }
    allowed = await api.client.post("/graphql", json=body)
    assert allowed.status_code == 200 and allowed.json()["data"]["guildRoles"]
    # Mark the cached copy, so that an answer from the cache can be told from a computed one.
    redis = api.services.redis
    cached = [key async for key in redis.scan_iter(match=api.services.role_cache.keys.response("*"))]
    assert len(cached) == 1, cached
    marked = allowed.content.replace(b"Moderators", b"Marked In Cache")
    assert marked != allowed.content
    entry = await redis.get(cached[0])  # the answer, after the guild versions it was computed from
    await redis.set(cached[0], entry.replace(b"Moderators", b"Marked In Cache"), keepttl=True)
    again = await api.client.post("/graphql", json=body)
    assert again.content == marked  # served from the cache
    other = await create_key(api.settings, [quiet], ["roles:read"])
    refused = await api.client.post("/graphql", json=body, headers={"Authorization": f"Bearer {other}"})
    assert refused.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert "guildRoles" not in refused.text or refused.json()["data"] is None
    assert "Marked In Cache" not in refused.text
    for role in next(g for g in fixture.guilds if g.id == playground).roles:
        if role.id != playground:  # @everyone's id is the guild's, which the question names
            assert str(role.id) not in refused.text and role.name not in refused.text
