"""1,000 voters on one poll at once, half clicking its buttons through the sandbox and half
calling ``castVote`` as people logged in with Discord, while 1,000 ``pollUpdated`` subscribers
watch it: on SQLite, then on PostgreSQL (a throwaway server the bench starts, fsync off as the
tests run it).

Each database gets a run of its own: a private redis-server, the sandbox with a generated fixture
(one guild: the owner, the bot with view/send/embed, ``--voters`` members; channels #votes,
#baseline and #quiet), one ``polly api`` and one ``polly bot`` sharing the database. The logins
(one session per GraphQL voter: /auth/login, the sandbox's /oauth2/authorize, /auth/callback)
come first, with the sandbox's rate limits off (its token route would take 10 a second); then
Discord's limits are set (5 messages per channel per 5 s, 50 requests a second) for everything
measured. The API keeps a voter's guilds cached for the run (``POLLY_VIEWER_CACHE_TTL=900``), as
for someone who just loaded the page, so no burst depends on when it came after the logins.

Reported per database, for the burst on #votes with every subscriber connected:
- votes sent, accepted (the voter was told it counted: castVote's ``myBallot``, or the click's
  ephemeral "You voted ..."), the failures as the voters saw them, word for word, and the votes
  recorded as sent;
- votes lost: voters whose ballot, read back from the results CSV as a manager, is not the vote
  they sent; whether the results equal what was sent; duplicate ballots per user, from the CSV
  and from the database's ballots table;
- votes a second: accepted votes over the burst's wall time (first request sent to last answer);
- when each subscriber first received a ``pollUpdated`` message whose results equal the final
  counts, in ms after the burst's last answer (negative: before the last voter had an answer)
  and after the burst's start, by the kernel's receive time (the subscribers run at idle
  priority, as in bench/fanout); and how many messages each received;
- Discord message edits during the burst (to its last answer) and after it, 429s, interactions
  left unanswered; the processes' CPU time in the burst; their warnings and errors, counted.

Baselines, in the same run: one vote alone with every subscriber connected (the owner votes,
then takes it back): delivery without a burst. The same votes sent one at a time (same voters,
paths and choices, on a poll in #baseline, before any subscriber connects): what the code paths
do without contention, which a burst should match or beat. The same burst on a poll in #quiet
with no subscriber yet: what the subscribers cost the burst (``--no-quiet-burst`` skips it).

Run: bench/votes [--voters 1000] [--subscribers 1000] [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import itertools
import json
import os
import pwd
import random
import re
import select
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import asyncpg
import httpx

from bench.polls import CHANNEL_LIMIT, CHANNEL_WINDOW, GLOBAL_PER_SECOND, percentile
from bench.processes import REPO, Stack, polly_env
from bench.ws_clients import Subscriber, TimestampedReader

CLIENT_SECRET = "sandbox-client-secret"
SESSION_COOKIE = "polly_session"
OPTIONS = ["Red", "Green", "Blue", "Yellow"]
DEFERRED = 5  # a deferred response: "thinking…", the answer edited in later
EDIT_ROUTE = "PATCH /channels/{channel_id}/messages/{message_id}"
CLIENT_PROCESSES = 2
# Permission bits (Discord's): view channel, send messages, embed links, read message history.
VIEW, SEND, EMBED, HISTORY = 1 << 10, 1 << 11, 1 << 14, 1 << 16

CREATE = "mutation($input: CreatePollInput!) { createPoll(input: $input) { id } }"
READ = """query($p: ID!) { poll(id: $p) { status messageId
  results { voters version options { votes } } } }"""
VOTE = "mutation($p: ID!, $pos: [Int!]!) { castVote(pollId: $p, positions: $pos) { myBallot } }"
RETRACT = "mutation($p: ID!) { retractVote(pollId: $p) { myBallot } }"
BOT_GUILDS = "{ botGuilds { id } }"
SUBSCRIPTION = """subscription($g: ID!, $p: ID) { pollUpdated(guildId: $g, pollId: $p) {
  kind eventId poll { results { voters version options { votes } } } } }"""


# -- the world -------------------------------------------------------------------------------------


@dataclass
class Voter:
    user_id: str
    name: str
    path: str  # "button" or "graphql"
    position: int
    cookie: str | None = None


@dataclass
class World:
    fixture: dict[str, Any]
    guild: str
    votes_channel: str
    baseline_channel: str
    quiet_channel: str
    owner: Voter
    voters: list[Voter]


def make_world(count: int, seed: int) -> World:
    """One guild with the bot (view, send, embed in its text channels), the owner and ``count``
    members; every other voter clicks, the rest vote through GraphQL, each for a seeded choice."""
    base = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)
    ids = (str(((base + n - 1_420_070_400_000) << 22) | 1) for n in itertools.count())
    bot, guild, bot_role, votes, baseline, quiet, owner = (next(ids) for _ in range(7))
    choose = random.Random(seed)
    voters = [
        Voter(
            next(ids), f"voter{n:05d}", "button" if n % 2 == 0 else "graphql", choose.randrange(len(OPTIONS))
        )
        for n in range(count)
    ]
    fixture = {
        "bot": {"id": bot, "username": "Polly Bench", "token": "bench-bot-token"},
        "application": {"id": bot, "name": "Polly Bench", "client_secret": CLIENT_SECRET},
        "users": [
            {"id": owner, "username": "owner"},
            *({"id": v.user_id, "username": v.name} for v in voters),
        ],
        "guilds": [
            {
                "id": guild,
                "name": "Bench Votes",
                "owner_id": owner,
                "roles": [
                    {"id": guild, "name": "@everyone", "permissions": str(VIEW | SEND | HISTORY)},
                    {
                        "id": bot_role,
                        "name": "Polly",
                        "position": 1,
                        "managed": True,
                        "permissions": str(VIEW | SEND | EMBED | HISTORY),
                        "tags": {"bot_id": bot},
                    },
                ],
                "channels": [
                    {"id": votes, "name": "votes", "type": 0},
                    {"id": baseline, "name": "baseline", "type": 0},
                    {"id": quiet, "name": "quiet", "type": 0},
                ],
                "members": [
                    {"user_id": owner},
                    {"user_id": bot, "roles": [bot_role]},
                    *({"user_id": v.user_id} for v in voters),
                ],
            }
        ],
    }
    return World(fixture, guild, votes, baseline, quiet, Voter(owner, "owner", "graphql", 0), voters)


# -- a throwaway PostgreSQL server (as tests/postgres.py starts one) ------------------------------


def postgres_bin_dir() -> Path | None:
    candidates = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versions, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)[::-1]
    return next((c for c in candidates if (c / "initdb").is_file() and (c / "pg_ctl").is_file()), None)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server in a temporary directory (fsync off, as the tests run it): its URL."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (no initdb/pg_ctl); apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="polly-bench-pg-"))
    data, sockets, log = root / "data", root / "sockets", root / "server.log"
    sockets.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        account = pwd.getpwnam("postgres")
        for path in (root, sockets):
            os.chown(path, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]

    def run(*command: str) -> None:
        done = subprocess.run([*as_user, *command], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            details = log.read_text() if log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}{details}")

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "polly", "-A", "trust", "-E", "UTF8")
        for attempt in range(5):  # a port taken between choosing and binding costs a retry
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            options = (
                f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
            )
            try:
                run(
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                )
                break
            except RuntimeError:
                if attempt == 4 or not (log.exists() and "could not bind" in log.read_text()):
                    raise

        async def create() -> None:
            admin = await asyncpg.connect(host="127.0.0.1", port=port, user="polly", database="postgres")
            try:
                await admin.execute('CREATE DATABASE "polly"')
            finally:
                await admin.close()

        asyncio.run(create())
        yield f"postgresql+asyncpg://polly@127.0.0.1:{port}/polly"
    finally:
        with contextlib.suppress(Exception):
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


# -- the subscribers: a child process of raw graphql-transport-ws clients ---------------------------


class Recorder(Subscriber):
    """A bench/ws_clients subscriber that keeps every message (and its arrival) once subscribed."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.frames: list[tuple[float, bytes]] = []
        self.closed = False

    def message(self, payload: bytes, now: float) -> None:
        if not self.subscribed.done():
            super().message(payload, now)  # the ack: subscribe
        elif b'"type":"ping"' in payload:
            self.send(b'{"type":"pong"}')
        elif b'"type":"pong"' not in payload:
            self.frames.append((now, payload))


def summary(payload: bytes) -> list[Any]:
    """[kind, voters, counts] of one message (kind "error: ..." for anything but a result)."""
    try:
        message = json.loads(payload)
        if message.get("type") != "next":
            return [f"{message.get('type')}: {json.dumps(message.get('payload'))[:200]}", None, None]
        body = message["payload"]
        if body.get("errors"):
            return [f"errors: {body['errors'][0].get('message', '')[:200]}", None, None]
        update = body["data"]["pollUpdated"]
        results = (update.get("poll") or {}).get("results")
        if results is None:
            return [update["kind"], None, None]
        return [update["kind"], results["voters"], [o["votes"] for o in results["options"]]]
    except (ValueError, KeyError, TypeError) as error:
        return [f"unreadable: {error}", None, None]


def run_clients(url: str, count: int, subscribe: str) -> None:
    """Child process: ``count`` subscribers; "ready" once subscribed; then records at idle
    priority until the parent writes the final results (a JSON line) and every subscriber saw
    them (or ``within`` seconds passed), and prints every subscriber's messages as one JSON line:
    [[arrival, kind, voters, counts], ...] per subscriber."""
    subscribers = asyncio.run(connect_clients(url, count, subscribe))
    print("ready", flush=True)
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    readers, subscribers_by_fd = {}, {}
    for subscriber in subscribers:
        reader = TimestampedReader(subscriber)
        readers[reader.socket.fileno()] = reader
        subscribers_by_fd[reader.socket.fileno()] = subscriber
    stdin = sys.stdin.fileno()
    final: list[Any] | None = None
    deadline = float("inf")
    matched = [False] * len(subscribers)
    checked = [0] * len(subscribers)
    received = b""
    with select.epoll() as ready:
        for fd in readers:
            ready.register(fd, select.EPOLLIN | select.EPOLLRDHUP)
        ready.register(stdin, select.EPOLLIN)
        while time.monotonic() < deadline:
            for fd, events in ready.poll(0.25):
                if fd == stdin:
                    received += os.read(stdin, 65536)
                    if b"\n" in received:
                        order = json.loads(received.split(b"\n")[0])
                        final = [order["voters"], order["counts"]]
                        deadline = time.monotonic() + order["within"]
                        ready.unregister(stdin)
                    continue
                readers[fd].read()
                if events & (select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR):
                    ready.unregister(fd)
                    subscribers_by_fd[fd].closed = True
            if final is None:
                continue
            for n, subscriber in enumerate(subscribers):
                frames = subscriber.frames
                while not matched[n] and checked[n] < len(frames):
                    matched[n] = summary(frames[checked[n]][1])[1:] == final
                    checked[n] += 1
            if all(m or s.closed for m, s in zip(matched, subscribers, strict=True)):
                break
    everything = [
        [[at, *summary(payload)] for at, payload in s.frames]
        + ([[time.time(), "closed by the server", None, None]] if s.closed else [])
        for s in subscribers
    ]
    print(json.dumps(everything), flush=True)
    sys.stdin.read()  # stay connected until told to go


async def connect_clients(url: str, count: int, subscribe: str) -> list[Recorder]:
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    operation = json.loads(subscribe)
    subscribers: list[Recorder] = []
    gate = asyncio.Semaphore(100)

    async def connect() -> None:
        async with gate:
            done = loop.create_future()
            payload = json.dumps(
                {"id": str(uuid.uuid4()), "type": "subscribe", "payload": operation}
            ).encode()
            _, protocol = await loop.create_connection(
                lambda: Recorder(parts.path, parts.netloc, payload, 1 << 30, done),
                parts.hostname or "127.0.0.1",
                parts.port or 80,
            )
            subscribers.append(protocol)
            await asyncio.wait_for(protocol.subscribed, 60)

    await asyncio.gather(*(connect() for _ in range(count)))
    return subscribers


def start_clients(
    stack: Stack, url: str, count: int, auth: str, subscribe: str
) -> list[subprocess.Popen[bytes]]:
    processes = []
    for share in (
        count // CLIENT_PROCESSES + (n < count % CLIENT_PROCESSES) for n in range(CLIENT_PROCESSES)
    ):
        if share == 0:
            continue
        stack.spawn(
            [sys.executable, "-m", "bench.votes", "--clients-child", url, str(share), subscribe],
            {"POLLY_BENCH_AUTHORIZATION": auth},
            stdout=subprocess.PIPE,
            stdin=subprocess.PIPE,
        )
        processes.append(stack.last)
    for process in processes:
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"ready":
            raise RuntimeError("a subscriber process could not subscribe")
    return processes


async def collect_clients(processes: list[subprocess.Popen[bytes]]) -> list[list[list[Any]]]:
    frames: list[list[list[Any]]] = []
    for process in processes:
        assert process.stdout is not None and process.stdin is not None
        line = await asyncio.to_thread(process.stdout.readline)
        frames += json.loads(line) if line.strip() else []
        process.stdin.close()
    return frames


# -- voting ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    voter: Voter
    sent: float
    answered: float
    accepted: bool
    failure: str | None = None  # what went wrong, in words


async def log_in(api: str, name: str) -> str:
    """/auth/login → the sandbox's authorize page approved as ``name`` → /auth/callback: the
    polly_session cookie."""
    async with httpx.AsyncClient(base_url=api, timeout=60, follow_redirects=False) as client:
        started = await client.get("/auth/login", params={"next": "/"})
        if started.status_code != 302:
            raise RuntimeError(f"/auth/login answered {started.status_code}: {started.text[:200]}")
        approved = await client.get(f"{started.headers['location']}&{urlencode({'user': name})}")
        if approved.status_code != 302:
            raise RuntimeError(f"authorize answered {approved.status_code}: {approved.text[:200]}")
        done = await client.get(approved.headers["location"])
        cookie = client.cookies.get(SESSION_COOKIE)
        if done.status_code != 303 or not cookie:
            raise RuntimeError(f"/auth/callback answered {done.status_code}: {done.text[:200]}")
        return cookie


async def log_everyone_in(api: str, people: list[Voter]) -> Counter[str]:
    gate = asyncio.Semaphore(16)
    failures: Counter[str] = Counter()

    async def one(person: Voter) -> None:
        async with gate:
            try:
                person.cookie = await log_in(api, person.name)
            except (RuntimeError, KeyError, httpx.HTTPError) as error:
                failures[str(error) or type(error).__name__] += 1

    await asyncio.gather(*(one(person) for person in people))
    return failures


class Voting:
    """Sends votes the two ways, timing each from sending to its answer."""

    def __init__(self, api: str, sandbox: str, poll: dict[str, Any]) -> None:
        self.api, self.sandbox, self.poll = api, sandbox, poll
        timeout = aiohttp.ClientTimeout(total=180)
        jar = aiohttp.DummyCookieJar()  # each request carries its voter's cookie itself
        self.api_http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=timeout, cookie_jar=jar
        )
        self.sandbox_http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout)

    async def close(self) -> None:
        await self.api_http.close()
        await self.sandbox_http.close()

    async def warm_sandbox(self, connections: int) -> None:
        """Open the connections the clicks will use (the sandbox stands in for Discord, whose
        front door is not what is measured; its listen backlog is aiohttp's 128)."""
        gate = asyncio.Event()

        async def one() -> None:
            await gate.wait()
            async with self.sandbox_http.get(f"{self.sandbox}/_sandbox/interactions/config") as response:
                await response.read()

        tasks = [asyncio.create_task(one()) for _ in range(connections)]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def vote(self, voter: Voter, start: asyncio.Event | None = None) -> Outcome:
        if start is not None:
            await start.wait()
        sent = time.time()
        try:
            if voter.path == "button":
                accepted, failure = await self._click(voter)
            else:
                accepted, failure = await self._cast(
                    voter, VOTE, {"p": self.poll["id"], "pos": [voter.position]}, [voter.position]
                )
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            accepted, failure = False, f"{type(error).__name__}: {str(error)[:120]}"
        return Outcome(voter, sent, time.time(), accepted, failure)

    async def _click(self, voter: Voter) -> tuple[bool, str | None]:
        click = {
            "user_id": voter.user_id,
            "channel_id": self.poll["channelId"],
            "message_id": self.poll["messageId"],
            "custom_id": f"poll:{self.poll['id']}:{voter.position}",
        }
        async with self.sandbox_http.post(
            f"{self.sandbox}/_sandbox/interactions/click", json=click
        ) as response:
            body = await response.json(content_type=None)
        if response.status != 200:
            return False, f"click refused, HTTP {response.status}: {body.get('message', '')[:120]}"
        if not body.get("answered"):
            return False, "click unanswered within Discord's 3 s"
        content = ((body.get("response") or {}).get("data") or {}).get("content", "")
        if (body.get("response") or {}).get("type") == DEFERRED:
            # Acknowledged in time; the bot edits the answer in once the vote is recorded.
            content = await self._edited_in(str(body["interaction_id"]))
        if content.startswith(f"You voted **{OPTIONS[voter.position]}**"):
            return True, None
        return False, f"click answered: {content[:120] or '(nothing edited in within 30 s)'}"

    async def _edited_in(self, interaction_id: str) -> str:
        """The deferred answer's content, once the bot edited it in (empty if it never did)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            async with self.sandbox_http.get(
                f"{self.sandbox}/_sandbox/interactions/{interaction_id}"
            ) as response:
                body = await response.json(content_type=None)
            content = str(((body.get("original_response") or {}).get("content")) or "")
            if content:
                return content
            await asyncio.sleep(0.1)
        return ""

    async def _cast(
        self, voter: Voter, query: str, variables: dict[str, Any], expected: list[int] | None
    ) -> tuple[bool, str | None]:
        if voter.cookie is None:
            return False, "castVote not sent: the voter's login failed"
        headers = {"Cookie": f"{SESSION_COOKIE}={voter.cookie}", "Origin": self.api}
        document = {"query": query, "variables": variables}
        async with self.api_http.post(f"{self.api}/graphql", json=document, headers=headers) as response:
            text = await response.text()
        field = "castVote" if expected is not None else "retractVote"
        try:
            body = json.loads(text)
        except ValueError:
            return False, f"{field}: HTTP {response.status}: {text[:160]}"
        if body.get("errors"):
            error = body["errors"][0]
            code = (error.get("extensions") or {}).get("code", "?")
            return False, f"{field} {code}: {error.get('message', '')[:200]}"
        data = (body.get("data") or {}).get(field)
        if response.status == 200 and data is not None and data.get("myBallot") == expected:
            return True, None
        return False, f"{field}: HTTP {response.status}: {text[:160]}"

    async def owner(self, voter: Voter, positions: list[int] | None) -> Outcome:
        """The owner votes (``positions``) or takes the vote back (None)."""
        sent = time.time()
        if positions is None:
            accepted, failure = await self._cast(voter, RETRACT, {"p": self.poll["id"]}, None)
        else:
            accepted, failure = await self._cast(
                voter, VOTE, {"p": self.poll["id"], "pos": positions}, positions
            )
        return Outcome(voter, sent, time.time(), accepted, failure)


# -- reading back ---------------------------------------------------------------------------------


class Reader:
    """Reads as a manager (a key with polls:read and polls:write)."""

    def __init__(self, api: str, auth: dict[str, str]) -> None:
        self.http = httpx.AsyncClient(base_url=api, headers=auth, timeout=60)

    async def poll(self, poll_id: str) -> dict[str, Any]:
        body = (await self.http.post("/graphql", json={"query": READ, "variables": {"p": poll_id}})).json()
        if body.get("errors"):
            raise RuntimeError(f"reading poll {poll_id} failed: {body['errors']}")
        poll: dict[str, Any] = body["data"]["poll"]
        return poll

    async def results(self, poll_id: str) -> tuple[int, list[int], int]:
        results = (await self.poll(poll_id))["results"]
        return results["voters"], [o["votes"] for o in results["options"]], results["version"]

    async def settled(self, poll_id: str, quiet: float = 2.0, within: float = 120.0) -> tuple[int, list[int]]:
        """The results once their version stayed the same for ``quiet`` seconds."""
        deadline = time.monotonic() + within
        last, since = await self.results(poll_id), time.monotonic()
        while time.monotonic() - since < quiet and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            now = await self.results(poll_id)
            if now != last:
                last, since = now, time.monotonic()
        return last[0], last[1]

    async def ballots_csv(self, poll_id: str) -> list[tuple[str, int]]:
        """(user id, position) of every choice, from GET /polls/{id}/results.csv."""
        response = await self.http.get(f"/polls/{poll_id}/results.csv")
        if response.status_code != 200:
            raise RuntimeError(f"results.csv answered {response.status_code}: {response.text[:200]}")
        rows = list(csv.reader(io.StringIO(response.text)))
        start = next(n for n, row in enumerate(rows) if row[:2] == ["user_id", "position"]) + 1
        return [(row[0], int(row[1])) for row in rows[start:] if row]

    async def close(self) -> None:
        await self.http.aclose()


async def ballots_in_database(database_url: str | None, data_dir: str, poll_id: str) -> Counter[str]:
    """Ballots per user of the poll, straight from its table."""
    query = "SELECT user_id, COUNT(*) FROM ballots WHERE poll_id = {} GROUP BY user_id"
    if database_url is None:
        with contextlib.closing(sqlite3.connect(f"file:{data_dir}/polly.db?mode=ro", uri=True)) as db:
            rows = db.execute(query.format("?"), (int(poll_id),)).fetchall()
    else:
        connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            rows = await connection.fetch(query.format("$1"), int(poll_id))
        finally:
            await connection.close()
    return Counter({str(user): int(count) for user, count in rows})


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- one database ---------------------------------------------------------------------------------


@dataclass
class Run:
    database: str
    figures: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, Counter[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    logs: Counter[str] = field(default_factory=Counter)


@dataclass
class Parts:
    """What one database's run started: where each part listens, and the keys."""

    stack: Stack
    sandbox: str
    api: str
    manager: str  # a key with polls:read and polls:write
    watcher: str  # a key with polls:read
    database_url: str | None
    data_dir: str
    pids: dict[str, int]


def make_key(sandbox: str, redis_url: str, settings: dict[str, str], guild: str, scopes: list[str]) -> str:
    env = polly_env(sandbox, redis_url, settings)
    created = subprocess.run(
        [sys.executable, "-m", "app", "keys", "create", "--guild", guild, "--json",
         *(argument for scope in scopes for argument in ("--scope", scope))],
        cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return f"Bearer {json.loads(created.stdout)['token']}"


def start_parts(stack: Stack, database: str, world: World, logs: Path) -> Parts:
    def log_to(name: str) -> None:
        stack.stderr = stack.enter_context((logs / f"{database}-{name}.log").open("wb"))

    redis_url = stack.redis()
    log_to("sandbox")
    sandbox = stack.sandbox(world.fixture)
    pids = {"sandbox": stack.last.pid}
    # Off for the logins: the token exchange is one route for everyone (10 a second by default).
    httpx.post(f"{sandbox}/_sandbox/ratelimits", json={"enabled": False}).raise_for_status()
    settings = {
        "discord_client_secret": CLIENT_SECRET,
        # A voter's guilds stay cached through the run, as for someone who just loaded the page:
        # every burst finds them so, whenever it comes (the default is a minute).
        "viewer_cache_ttl": "900",
    }
    database_url = None
    if database == "postgresql":
        database_url = stack.enter_context(postgres_server())
        settings["database_url"] = database_url
    log_to("api")
    api = stack.api(sandbox, redis_url, **settings)
    pids["api"] = stack.last.pid
    settings["data_dir"] = stack.data_dir or ""
    log_to("bot")
    stack.bot(sandbox, redis_url, **settings)
    pids["bot"] = stack.last.pid
    log_to("subscribers")
    manager = make_key(sandbox, redis_url, settings, world.guild, ["polls:read", "polls:write"])
    watcher = make_key(sandbox, redis_url, settings, world.guild, ["polls:read"])
    deadline = time.monotonic() + 60
    while not (httpx.post(f"{api}/graphql", json={"query": BOT_GUILDS}, headers=stack.auth).json()
               .get("data") or {}).get("botGuilds"):  # fmt: skip
        if time.monotonic() > deadline:
            raise RuntimeError("the bot did not sync the guild within a minute")
        time.sleep(0.2)
    return Parts(stack, sandbox, api, manager, watcher, database_url, settings["data_dir"], pids)


async def create_poll(reader: Reader, guild: str, channel: str, name: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    draft = {
        "guildId": guild, "channelId": channel, "name": name, "question": "Which colour?",
        "options": [{"text": text} for text in OPTIONS], "opensAt": now.isoformat(),
        "closesAt": (now + timedelta(hours=1)).isoformat(), "resultsVisibility": "LIVE",
    }  # fmt: skip
    body = (await reader.http.post("/graphql", json={"query": CREATE, "variables": {"input": draft}})).json()
    if body.get("errors"):
        raise RuntimeError(f"createPoll failed: {body['errors']}")
    poll_id = body["data"]["createPoll"]["id"]
    deadline = time.monotonic() + 60
    while True:
        poll = await reader.poll(poll_id)
        if poll["status"] == "OPEN" and poll["messageId"]:
            return {"id": poll_id, "channelId": channel, "messageId": poll["messageId"]}
        if time.monotonic() > deadline:
            raise RuntimeError(f"poll {poll_id} was not OPEN and posted within a minute: {poll}")
        await asyncio.sleep(0.2)


class Control:
    """The sandbox's control API."""

    def __init__(self, sandbox: str) -> None:
        self.http = httpx.AsyncClient(base_url=sandbox, timeout=60)

    async def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = (await self.http.get("/_sandbox/stats")).json()
        return stats

    async def reset(self) -> None:
        (await self.http.post("/_sandbox/stats/reset")).raise_for_status()

    async def limits(self, **limits: Any) -> None:
        (await self.http.post("/_sandbox/ratelimits", json=limits)).raise_for_status()

    async def interactions(self) -> dict[str, Any]:
        stats: dict[str, Any] = (await self.http.get("/_sandbox/interactions/stats")).json()
        return stats

    async def shown(self, poll: dict[str, Any]) -> list[int] | None:
        """The vote counts the poll's Discord message shows ("12 votes" per option field)."""
        answer = (await self.http.get(f"/_sandbox/channels/{poll['channelId']}/messages")).json()
        message = next((m for m in answer["messages"] if m["id"] == poll["messageId"]), None)
        if message is None or not message.get("embeds"):
            return None
        try:
            return [int(f["value"].split()[0]) for f in message["embeds"][0]["fields"]]
        except (ValueError, KeyError, IndexError):
            return None

    async def until_shown(self, poll: dict[str, Any], counts: list[int], within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await self.shown(poll) == counts:
                return True
            await asyncio.sleep(0.25)
        return False

    async def edits_settled(self, quiet: float = CHANNEL_WINDOW + 1.0, within: float = 60.0) -> int:
        """The message edits since the stats were reset, once none came for ``quiet`` seconds."""
        deadline = time.monotonic() + within
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            edits: int = (await self.stats())["by_route"].get(EDIT_ROUTE, 0)
            if edits != last:
                last, since = edits, time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
            await asyncio.sleep(0.25)
        return last


def expected_counts(voters: list[Voter]) -> list[int]:
    counts = [0] * len(OPTIONS)
    for voter in voters:
        counts[voter.position] += 1
    return counts


def failures_of(outcomes: list[Outcome]) -> Counter[str]:
    return Counter(o.failure or "?" for o in outcomes if not o.accepted)


def answer_times(outcomes: list[Outcome], path: str) -> list[float]:
    return sorted(o.answered - o.sent for o in outcomes if o.voter.path == path)


def run_database(database: str, args: argparse.Namespace, world: World, logs: Path) -> Run:
    run = Run(database)
    try:
        with Stack() as stack:
            parts = start_parts(stack, database, world, logs)
            asyncio.run(measure(run, parts, args, world))
    except Exception as error:  # a run that breaks is reported, and the next one still runs
        run.notes.append(f"the run failed: {type(error).__name__}: {error}")
    run.logs = summarize_logs(logs, database)
    return run


@dataclass
class Burst:
    outcomes: list[Outcome]
    start: float  # wall clock
    last_answer: float
    during: dict[str, Any]  # the sandbox's stats at the last answer
    cpu: dict[str, float]


async def fire(voting: Voting, voters: list[Voter], control: Control, parts: Parts) -> Burst:
    """Every voter at once; the sandbox's counters start from zero."""
    await voting.warm_sandbox(sum(v.path == "button" for v in voters))
    await control.reset()
    cpu_before = {name: cpu_seconds(pid) for name, pid in parts.pids.items()}
    start = asyncio.Event()
    tasks = [asyncio.create_task(voting.vote(v, start)) for v in voters]
    await asyncio.sleep(0.1)
    began = time.time()
    start.set()
    outcomes = list(await asyncio.gather(*tasks))
    last_answer = max(o.answered for o in outcomes)
    during = await control.stats()
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in parts.pids.items()}
    return Burst(outcomes, began, last_answer, during, cpu)


async def read_back(
    reader: Reader, parts: Parts, poll: dict[str, Any], voters: list[Voter], outcomes: list[Outcome]
) -> dict[str, Any]:
    """Each voter's ballot as a manager reads it (the CSV), against the vote they sent; ballots
    per user in the CSV and in the database."""
    chosen: dict[str, list[int]] = {}
    for user, position in await reader.ballots_csv(poll["id"]):
        chosen.setdefault(user, []).append(position)
    in_database = await ballots_in_database(parts.database_url, parts.data_dir, poll["id"])
    lost = [v for v in voters if chosen.get(v.user_id) != [v.position]]
    accepted = {o.voter.user_id for o in outcomes if o.accepted}
    return {
        "sent": len(outcomes),
        "accepted": len(accepted),
        "recorded": len(voters) - len(lost),
        "lost": len(lost),
        "lost_missing": sum(v.user_id not in chosen for v in lost),
        "lost_accepted": sum(v.user_id in accepted for v in lost),
        "strangers": len(set(chosen) - {v.user_id for v in voters}),
        "duplicates_csv": sum(len(positions) - 1 for positions in chosen.values()),
        "duplicates_db": sum(n - 1 for n in in_database.values()),
        "button": answer_times(outcomes, "button"),
        "graphql": answer_times(outcomes, "graphql"),
    }


async def measure(run: Run, parts: Parts, args: argparse.Namespace, world: World) -> None:
    figures = run.figures
    control = Control(parts.sandbox)
    reader = Reader(parts.api, {"Authorization": parts.manager})
    try:
        people = [v for v in world.voters if v.path == "graphql"] + [world.owner]
        started = time.monotonic()
        run.failures["logins"] = await log_everyone_in(parts.api, people)
        figures["logins"] = (len(people) - sum(run.failures["logins"].values()), time.monotonic() - started)
        await control.limits(
            enabled=True,
            route_limit=CHANNEL_LIMIT,
            route_window=CHANNEL_WINDOW,
            global_per_second=GLOBAL_PER_SECOND,
        )
        poll = await create_poll(reader, world.guild, world.votes_channel, "Bench burst")
        other = await create_poll(reader, world.guild, world.baseline_channel, "Bench baseline")
        await baseline(run, parts, control, reader, other, world.voters[: args.baseline_votes])
        if args.quiet_burst:
            quiet = await create_poll(reader, world.guild, world.quiet_channel, "Bench quiet burst")
            await quiet_burst(run, parts, control, reader, quiet, world.voters)

        ws = parts.api.replace("http", "ws", 1) + "/graphql"
        subscribe = json.dumps({"query": SUBSCRIPTION, "variables": {"g": world.guild, "p": poll["id"]}})
        clients = start_clients(parts.stack, ws, args.subscribers, parts.watcher, subscribe)
        await asyncio.sleep(2)  # the last subscriptions reach the hub

        # One vote alone (the owner's), then taken back: delivery without a burst.
        voting = Voting(parts.api, parts.sandbox, poll)
        alone = await voting.owner(world.owner, [0])
        await asyncio.sleep(3)
        taken_back = await voting.owner(world.owner, None)
        if not (alone.accepted and taken_back.accepted):
            run.notes.append(f"the owner's single vote failed: {alone.failure} / {taken_back.failure}")
        # Its edits done, and the channel's whole edit budget left for the burst.
        await control.until_shown(poll, [0] * len(OPTIONS), 30)
        await asyncio.sleep(CHANNEL_WINDOW + 0.5)

        burst = await fire(voting, world.voters, control, parts)
        await voting.close()
        final = await reader.settled(poll["id"])
        for process in clients:
            assert process.stdin is not None
            order = {"voters": final[0], "counts": final[1], "within": args.settle}
            process.stdin.write(json.dumps(order).encode() + b"\n")
            process.stdin.flush()
        shown = await control.until_shown(poll, final[1], args.settle)
        edits = await control.edits_settled()
        frames = await collect_clients(clients)
        after = await control.stats()
        interactions = await control.interactions()
        checked = await read_back(reader, parts, poll, world.voters, burst.outcomes)
    finally:
        await reader.close()
        await control.http.aclose()

    run.failures["burst"] = failures_of(burst.outcomes)
    wall = burst.last_answer - burst.start
    sent = (len(world.voters), expected_counts(world.voters))
    figures.update(checked)
    figures.update(
        wall=wall,
        rate=checked["accepted"] / wall if wall > 0 else 0.0,
        results=final,
        expected=sent,
        results_match=final == sent,
        edits_during=burst.during["by_route"].get(EDIT_ROUTE, 0),
        edits_after=edits - burst.during["by_route"].get(EDIT_ROUTE, 0),
        limited=after["by_status"].get("429", 0),
        guild_reads=after["by_route"].get("GET /users/@me/guilds", 0),
        message_shows_final=shown,
        interactions=interactions,
        cpu=burst.cpu,
    )
    figures.update(deliveries(frames, final, burst, alone))


async def baseline(
    run: Run, parts: Parts, control: Control, reader: Reader, poll: dict[str, Any], voters: list[Voter]
) -> None:
    """The same votes one at a time, on a poll of their own, before the subscribers connect."""
    voting = Voting(parts.api, parts.sandbox, poll)
    started = time.monotonic()
    outcomes = [await voting.vote(v) for v in voters]
    wall = time.monotonic() - started
    await voting.close()
    run.failures["one at a time"] = failures_of(outcomes)
    checked = await read_back(reader, parts, poll, voters, outcomes)
    run.figures["baseline"] = {**checked, "wall": wall, "rate": checked["accepted"] / wall if wall else 0.0}
    # Its last edit made before anything else is counted.
    await control.until_shown(poll, expected_counts(voters), 30)


async def quiet_burst(
    run: Run, parts: Parts, control: Control, reader: Reader, poll: dict[str, Any], voters: list[Voter]
) -> None:
    """The same burst on a poll of its own, before any subscriber connects."""
    voting = Voting(parts.api, parts.sandbox, poll)
    burst = await fire(voting, voters, control, parts)
    await voting.close()
    await reader.settled(poll["id"])
    interactions = await control.interactions()
    checked = await read_back(reader, parts, poll, voters, burst.outcomes)
    wall = burst.last_answer - burst.start
    run.failures["burst without subscribers"] = failures_of(burst.outcomes)
    run.figures["quiet"] = {
        **checked,
        "wall": wall,
        "rate": checked["accepted"] / wall if wall > 0 else 0.0,
        "interactions": interactions,
        "cpu": burst.cpu,
    }
    await control.until_shown(poll, expected_counts(voters), 30)
    await asyncio.sleep(CHANNEL_WINDOW + 0.5)  # its edits out of the next figures


def deliveries(
    frames: list[list[list[Any]]], final: tuple[int, list[int]], burst: Burst, alone: Outcome
) -> dict[str, Any]:
    """Per subscriber: its first message with the final results, in ms after the burst's last
    answer and after its start; the messages it received from the burst on; the single vote's
    delivery."""
    latency, from_start, alone_latency, messages = [], [], [], []
    kinds: Counter[str] = Counter()
    missing = alone_missing = 0
    for received in frames:
        during = [f for f in received if f[0] >= burst.start]
        messages.append(len(during))
        kinds.update(f[1] for f in during)
        final_at = next((f[0] for f in during if (f[2], f[3]) == final), None)
        if final_at is None:
            missing += 1
        else:
            latency.append((final_at - burst.last_answer) * 1000)
            from_start.append((final_at - burst.start) * 1000)
        single = next((f[0] for f in received if alone.sent <= f[0] < burst.start and f[2] == 1), None)
        if single is None:
            alone_missing += 1
        else:
            alone_latency.append((single - alone.answered) * 1000)
    return {
        "subscribers": len(frames),
        "latency": sorted(latency),
        "from_start": sorted(from_start),
        "missing": missing,
        "messages": sorted(messages),
        "kinds": kinds,
        "alone": sorted(alone_latency),
        "alone_missing": alone_missing,
    }


# -- the processes' logs -------------------------------------------------------------------------

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+): (.*)$")


def blank(text: str) -> str:
    """Ids, request ids and numbers made N, so that like records count together."""
    return re.sub(r"[0-9a-f]{12,}|\d+", "N", text)[:200]


def summarize_logs(logs: Path, database: str) -> Counter[str]:
    """The processes' log records of WARNING and above, counted alike with their numbers blanked
    out; an ERROR's traceback is summed up by its last line (the exception), and lines that are
    no log record at all (a crash) are counted too."""
    counted: Counter[str] = Counter()
    for path in sorted(logs.glob(f"{database}-*.log")):
        process = path.stem.removeprefix(f"{database}-")
        records: list[list[str]] = []  # [record, last unindented line after it]
        for line in path.read_text(errors="replace").splitlines():
            found = LOG_LINE.match(line)
            if found:
                level, logger, message = found.groups()
                serious = level in ("WARNING", "ERROR", "CRITICAL")
                records.append([f"{level} {logger}: {blank(message)}" if serious else "", ""])
            elif line.strip() and not line.startswith((" ", "\t")):
                if records and records[-1][0]:
                    records[-1][1] = line.strip()
                elif not records or not records[-1][0]:
                    records.append([blank(line.strip()), ""])
        for record, last in records:
            if record:
                counted[f"{process}: {record}" + (f" [{blank(last)}]" if last else "")] += 1
    return counted


# -- the report -----------------------------------------------------------------------------------


def pct(values: list[float], share: float, unit: float = 1.0) -> str:
    return f"{percentile(values, share) * unit:.0f}" if values else "-"


def pair(values: list[float], unit: float = 1.0) -> str:
    return f"{pct(values, 0.5, unit)} / {pct(values, 0.99, unit)}"


def triple(values: list[float], unit: float = 1.0) -> str:
    return f"{pair(values, unit)} / {pct(values, 1.0, unit)}"


def checks(f: dict[str, Any]) -> str:
    return f"{f['accepted']} {f['recorded']} {f['lost']} {f['duplicates_db']}"


ROWS: list[tuple[str, Any]] = [
    ("logins made (seconds)", lambda f: f"{f['logins'][0]} ({f['logins'][1]:.0f}s)"),
    ("votes sent", lambda f: f["sent"]),
    ("  accepted (the voter was told it counted)", lambda f: f["accepted"]),
    ("  failed (as the voter saw it)", lambda f: f["sent"] - f["accepted"]),
    ("  recorded as sent (read back)", lambda f: f["recorded"]),
    ("votes lost (read back != the vote sent)", lambda f: f["lost"]),
    ("  of them accepted / with no ballot at all", lambda f: f"{f['lost_accepted']} / {f['lost_missing']}"),
    ("final results = what was sent", lambda f: "yes" if f["results_match"] else "NO"),
    ("duplicate ballots (CSV / database)", lambda f: f"{f['duplicates_csv']} / {f['duplicates_db']}"),
    ("burst wall time (first sent to last answer)", lambda f: f"{f['wall']:.2f}s"),
    ("votes/s (accepted / wall time)", lambda f: f"{f['rate']:.0f}"),
    ("answer ms p50 / p99 / max: buttons", lambda f: triple(f["button"], 1000)),
    ("  castVote", lambda f: triple(f["graphql"], 1000)),
    ("final results at subscribers, ms after the", lambda f: ""),
    ("  last answer: p50 / p99 / max", lambda f: triple(f["latency"])),
    ("  burst's start: p50 / p99 / max", lambda f: triple(f["from_start"])),
    ("  subscribers that never got them", lambda f: f"{f['missing']} of {f['subscribers']}"),
    (
        "  messages per subscriber, min / p50 / max",
        lambda f: "{} / {} / {}".format(
            pct(f["messages"], 0), pct(f["messages"], 0.5), pct(f["messages"], 1.0)
        ),
    ),
    ("Discord edits during / after the burst", lambda f: f"{f['edits_during']} / {f['edits_after']}"),
    ("  the message shows the final counts", lambda f: "yes" if f["message_shows_final"] else "NO"),
    ("429s from the sandbox", lambda f: f["limited"]),
    (
        "interactions created / unanswered",
        lambda f: "{} / {}".format(f["interactions"].get("created"), f["interactions"].get("unanswered")),
    ),
    (
        "  answered late (10062) / twice",
        lambda f: "{} / {}".format(
            f["interactions"].get("late_responses"), f["interactions"].get("duplicate_responses")
        ),
    ),
    ("GET /users/@me/guilds from the burst on", lambda f: f["guild_reads"]),
    (
        "CPU s in the burst: api / bot / sandbox",
        lambda f: " / ".join(f"{f['cpu'][name]:.1f}" for name in ("api", "bot", "sandbox")),
    ),
    ("baselines:", lambda f: ""),
    ("one vote alone: delivery ms p50 / p99 / max", lambda f: triple(f["alone"])),
    ("  subscribers it missed", lambda f: f["alone_missing"]),
    ("same votes one at a time: votes/s", lambda f: f"{f['baseline']['rate']:.0f}"),
    ("  wall time", lambda f: f"{f['baseline']['wall']:.1f}s"),
    ("  accepted, recorded, lost, duplicates", lambda f: checks(f["baseline"])),
    ("  answer ms p50 / p99 / max: buttons", lambda f: triple(f["baseline"]["button"], 1000)),
    ("    castVote", lambda f: triple(f["baseline"]["graphql"], 1000)),
    ("same burst, no subscriber: votes/s", lambda f: f"{f['quiet']['rate']:.0f}"),
    ("  wall time", lambda f: f"{f['quiet']['wall']:.2f}s"),
    ("  accepted, recorded, lost, duplicates", lambda f: checks(f["quiet"])),
    ("  answer ms p50 / p99 / max: buttons", lambda f: triple(f["quiet"]["button"], 1000)),
    ("    castVote", lambda f: triple(f["quiet"]["graphql"], 1000)),
    ("  interactions unanswered", lambda f: f["quiet"]["interactions"].get("unanswered")),
    (
        "  CPU s: api / bot / sandbox",
        lambda f: " / ".join(f"{f['quiet']['cpu'][name]:.1f}" for name in ("api", "bot", "sandbox")),
    ),
]


def report(runs: list[Run], args: argparse.Namespace, took: float, logs: Path) -> None:
    buttons = (args.voters + 1) // 2
    print(
        f"{args.voters} voters on one poll at once ({buttons} clicking buttons through the sandbox,"
        f" {args.voters - buttons} calling castVote logged in), {args.subscribers} pollUpdated"
        " subscribers (graphql-transport-ws, an API key); one polly api and one polly bot sharing the"
        f" database; Discord's limits: {CHANNEL_LIMIT} messages per channel per {CHANNEL_WINDOW:g} s,"
        f" {GLOBAL_PER_SECOND} requests/s. PostgreSQL: a throwaway server, fsync off (as the tests run it)."
    )
    width = max(22, *(len(r.database) + 2 for r in runs))
    print(f"  {'':46}" + "".join(f"{r.database:>{width}}" for r in runs))
    for label, make in ROWS:
        cells = []
        for run in runs:
            try:
                cells.append(str(make(run.figures)))
            except (KeyError, TypeError):
                cells.append("-")
        print(f"  {label:46}" + "".join(f"{cell:>{width}}" for cell in cells))
    for run in runs:
        figures = run.figures
        if figures.get("results_match") is False:
            print(f"  {run.database}: results read back {figures['results']}, sent {figures['expected']}")
        for phase, failures in run.failures.items():
            if failures:
                print(f"  {run.database}, {phase}: votes that failed as the voter saw it:")
                for reason, count in failures.most_common():
                    print(f"    {count:5d} x {reason}")
        if figures.get("strangers"):
            print(f"  {run.database}: {figures['strangers']} ballots of users who did not vote")
        if set(figures.get("kinds") or {}) - {"VOTES_CHANGED"}:
            print(f"  {run.database}, subscriber messages by kind: {dict(figures['kinds'])}")
        for note in run.notes:
            print(f"  {run.database}: {note}")
        if run.logs:
            print(f"  {run.database}, the processes' warnings and errors (whole run):")
            for line, count in run.logs.most_common(12):
                print(f"    {count:5d} x {line}")
    print(f"  logs: {logs}; {took:.0f} s in all")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--clients-child":
        run_clients(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--voters", type=int, default=1000, help="guild members voting, half on each path")
    parser.add_argument("--subscribers", type=int, default=1000, help="pollUpdated subscribers")
    parser.add_argument(
        "--databases", default="sqlite,postgresql", help="in order (default sqlite,postgresql)"
    )
    parser.add_argument("--baseline-votes", type=int, help="votes sent one at a time (default: --voters)")
    parser.add_argument(
        "--no-quiet-burst",
        dest="quiet_burst",
        action="store_false",
        help="skip the burst without subscribers",
    )
    parser.add_argument("--settle", type=float, default=60.0, help="seconds to wait for the last messages")
    parser.add_argument("--seed", type=int, default=8, help="the voters' choices")
    args = parser.parse_args()
    if args.baseline_votes is None:
        args.baseline_votes = args.voters
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    unknown = set(databases) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown databases {sorted(unknown)}: use sqlite and/or postgresql")
    world = make_world(args.voters, args.seed)
    logs = Path(tempfile.mkdtemp(prefix="polly-bench-votes-logs-"))
    began = time.monotonic()
    runs = []
    for database in databases:
        for voter in [*world.voters, world.owner]:
            voter.cookie = None
        runs.append(run_database(database, args, world, logs))
    report(runs, args, time.monotonic() - began, logs)


if __name__ == "__main__":
    main()
