"""The poll scheduler of ``polly bot``: the database is the clock, and Discord follows it.

Every pass asks the database which polls have Discord work due (``due_at``), and takes each
with one conditional update (a lease), so however many bot processes run, one does each piece
of work; a process that dies mid-work loses its lease and another takes over. Posting carries
a nonce Discord enforces, so a retry after a crash between posting and recording finds the
first message instead of posting a second. Failures leave the poll as it was, say why in its
``problem``, and are retried with backoff; a deleted channel or message ends the poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.cache.discord_budget import DiscordBudget, Limit
from app.discord.client import DiscordNotFound, DiscordRest, DiscordRestError, DiscordUnreachable
from app.polls import message, rules
from app.polls.events import PollChange, PollEvents
from app.polls.record import Pending, PollRecord, Status, Visibility
from app.polls.service import Clock, utc_now
from app.roles.errors import ChannelNotFound
from app.roles.pingability import bot_abilities, validate_role
from app.roles.snapshot import GuildSnapshot
from app.storage.database import DatabaseError
from app.storage.polls import VISIBLE, PollStore
from app.telemetry.metrics import POLLS, SCHEDULER_LAG, SCHEDULER_RETRIES

log = logging.getLogger(__name__)

# Discord's error codes for what is gone for good.
UNKNOWN_CHANNEL = 10003
UNKNOWN_MESSAGE = 10008
MAX_BACKOFF = 300.0
# Seconds of a lease kept free for writing the outcome down.
LEASE_MARGIN = 5.0
POLL_COUNT_INTERVAL = 10.0

Snapshots = Callable[[int], Awaitable[GuildSnapshot | None]]
Plan = dict[str, Any]


class Postponed(Exception):
    """Discord's rate limits would have the work wait past the lease: it is due again later,
    released for whichever process is free then."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"rate limited for {wait:.1f}s")
        self.wait = wait


# Problems a success makes untrue.
RETRIED = frozenset({"DISCORD_UNAVAILABLE", "MISSING_PERMISSIONS", "DISCORD_REFUSED"})


def _action(poll: PollRecord, plan: Plan) -> str:
    """What a step of a poll's work was, as metrics name it: open, close or update."""
    if poll.status is Status.SCHEDULED:
        return "open"
    if plan.get("status") == Status.CLOSED.value and poll.status is not Status.CLOSED:
        return "close"
    return "update"


def _measure(poll: PollRecord, plan: Plan, now: datetime) -> None:
    """Scheduler lag of work done: from when it fell due to now. A retry (attempts left), a
    postponement (only a new due time) or a post moved later is not done yet."""
    if poll.due_at is None or plan.get("attempts", 0) or set(plan) == {"due_at"}:
        return
    if plan.get("pending") == Pending.POST.value:
        return
    SCHEDULER_LAG.labels(_action(poll, plan)).observe(max(0.0, (now - poll.due_at).total_seconds()))


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(MAX_BACKOFF, 2.0**attempts))


def _problem(code: str, text: str, now: datetime) -> Plan:
    return {"problem_code": code, "problem_message": text, "problem_at": now}


_NO_PROBLEM: Plan = {"problem_code": None, "problem_message": None, "problem_at": None}


@dataclass(frozen=True)
class RateLimits:
    """Discord's limits the schedulers of all processes share (see DiscordBudget)."""

    global_per_second: int = 50
    per_channel: int = 5
    channel_window: float = 5.0


class Scheduler:
    def __init__(
        self,
        store: PollStore,
        discord: DiscordRest,
        snapshots: Snapshots,
        *,
        interval: float = 0.5,
        lease: float = 60.0,
        concurrency: int = 64,
        clock: Clock = utc_now,
        budget: DiscordBudget | None = None,
        limits: RateLimits = RateLimits(),
        discord_timeout: float = 10.0,
        events: PollEvents | None = None,
    ) -> None:
        self.store = store
        self.budget = budget
        self.discord_timeout = discord_timeout
        self.events = events
        self.limits = limits
        self.discord = discord
        self.snapshots = snapshots
        self.interval = interval
        self.lease = timedelta(seconds=lease)
        self.concurrency = concurrency
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._working: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    async def channel_deleted(self, channel_id: int) -> None:
        """The gateway said a channel is gone: its polls end (with that reason) at once, not at
        their next due work."""
        if await self.store.recheck_channel(channel_id, self.clock()):
            self.wake()

    def wake(self) -> None:
        """Look for due work now rather than at the next pass."""
        self._wake.set()

    async def count_polls(self) -> None:
        """Polls by status for the metrics, every ``POLL_COUNT_INTERVAL`` seconds until cancelled."""
        while True:
            try:
                for status, count in (await self.store.by_status()).items():
                    POLLS.labels(status).set(count)
            except DatabaseError as error:
                log.debug("Could not count polls by status: %s", error)
            await asyncio.sleep(POLL_COUNT_INTERVAL)

    async def run(self) -> None:
        """Pass after pass until cancelled; nothing here stops the loop."""
        counting = asyncio.create_task(self.count_polls())
        self._tasks.add(counting)
        try:
            while True:
                try:
                    await self.run_once()
                except DatabaseError as error:
                    log.warning("The poll scheduler cannot read the database: %s", error)
                except Exception:
                    log.exception("The poll scheduler failed a pass; trying again.")
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval):
                        await self._wake.wait()
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            # What this process held is free for the next one at once, not when leases end.
            with contextlib.suppress(DatabaseError):
                await self.store.release(self.owner)

    async def run_once(self) -> int:
        """Start the work due now (up to the free slots); returns how many polls were taken up."""
        free = self.concurrency - len(self._working)
        if free <= 0:
            return 0
        due = [
            p for p in await self.store.due(self.clock(), free + len(self._working)) if p not in self._working
        ]
        for poll_id in due[:free]:
            self._working.add(poll_id)
            task = asyncio.create_task(self._handle(poll_id), name=f"poll-{poll_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(due[:free])

    async def _handle(self, poll_id: int) -> None:
        try:
            # Work that leaves more due at once (a close, then its final edit) goes on here.
            while await self._step(poll_id):
                pass
        except DatabaseError as error:
            log.warning(
                "Poll %s: the database failed (%s); the lease runs out and it is retried.", poll_id, error
            )
        except Exception:
            log.exception("Poll %s: unexpected failure; retrying in %s.", poll_id, MAX_BACKOFF)
            with contextlib.suppress(DatabaseError):
                await self.store.release(self.owner, poll_id, due_at=self.clock() + backoff(99))
        finally:
            self._working.discard(poll_id)

    async def _step(self, poll_id: int) -> bool:
        now = self.clock()
        poll = await self.store.claim(poll_id, self.owner, now, self.lease)
        if poll is None:
            return False
        facts: Plan = {}
        try:
            plan = await self._work(poll, now, facts)
        except DiscordRestError as error:
            plan = self._failed(poll, error, now)
        except Postponed as postponed:
            plan = {"due_at": now + timedelta(seconds=postponed.wait)}
        else:
            if poll.problem is not None and poll.problem.code in RETRIED and "problem_code" not in facts:
                facts.update(_NO_PROBLEM)
        applied = await self.store.settle(poll, self.owner, facts, plan, self.clock())
        if applied:
            _measure(poll, plan, self.clock())
        await self._announce(poll, facts, plan if applied else {})
        next_due = plan.get("due_at")
        return not applied or (next_due is not None and next_due <= self.clock())

    async def _announce(self, poll: PollRecord, facts: Plan, plan: Plan) -> None:
        if self.events is None:
            return
        status = plan.get("status")
        if status == Status.OPEN.value and poll.status is Status.SCHEDULED:
            change = PollChange.OPENED
        elif status == Status.CLOSED.value and poll.status is not Status.CLOSED:
            change = PollChange.CLOSED
        elif any(key in VISIBLE for key in (*facts, *plan)):
            change = PollChange.UPDATED
        else:
            return
        await self.events.changed(poll, change)

    # -- what is owed ---------------------------------------------------------------------------

    async def _work(self, poll: PollRecord, now: datetime, facts: Plan) -> Plan:
        done: Plan = {"pending": None, "due_at": None, "attempts": 0}
        if poll.deleted:
            if poll.pending is Pending.DELETE and poll.message_id is not None:
                # Gone already is what was asked.
                await self._spend(poll.channel_id, "delete")
                with contextlib.suppress(DiscordNotFound):
                    await self.discord.delete_message(poll.channel_id, poll.message_id)
            return done
        if poll.status is Status.SCHEDULED:
            return await self._open(poll, now, facts)
        if poll.status is Status.OPEN:
            if poll.closes_at <= now:
                # Closed first, in the database: from now on nothing counts, whatever Discord does.
                return {"status": Status.CLOSED.value, "pending": Pending.FINISH.value, "due_at": now}
            if poll.pending is not None and poll.message_id is not None:
                await self._edit(poll)
            return {**done, "due_at": poll.closes_at}
        if poll.pending is not None and poll.message_id is not None:
            await self._edit(poll)
            if poll.status is Status.CLOSED and poll.ping_on_close and poll.pending is Pending.FINISH:
                return {**done, **await self._closing_ping(poll, now)}
        return done

    async def _open(self, poll: PollRecord, now: datetime, facts: Plan) -> Plan:
        if poll.message_id is not None:  # posted; the status change was lost to a concurrent edit
            return {"status": Status.OPEN.value, "pending": Pending.EDIT.value, "due_at": now, "attempts": 0}
        if poll.opens_at > now:  # moved later since this work came due
            return {"pending": Pending.POST.value, "due_at": poll.opens_at}
        if poll.closes_at <= now:
            # Never posted before its end: closed, saying why.
            why = poll.problem or None
            return {
                "status": Status.CLOSED.value,
                "pending": None,
                "due_at": None,
                **(
                    {}
                    if why is not None
                    else _problem("NEVER_POSTED", "No polly bot ran between opensAt and closesAt.", now)
                ),
            }
        role_id, problem = None, _NO_PROBLEM
        if poll.ping_on_open and poll.ping_role_id is not None:
            role_id, problem = await self._pingable(poll, now)
        await self._spend(poll.channel_id, "post")
        posted = await self.discord.create_message(
            poll.channel_id, message.opening(poll, role_id, nonce=f"po{poll.id}n{poll.posts}")
        )
        # Facts, kept whatever else changed meanwhile: the message, and why it pinged nobody.
        facts.update(message_id=str(posted["id"]), posts=poll.posts + 1, **problem)
        log.info("Poll %s opened: message %s in channel %s.", poll.id, posted["id"], poll.channel_id)
        return {"status": Status.OPEN.value, "pending": None, "due_at": poll.closes_at, "attempts": 0}

    async def _closing_ping(self, poll: PollRecord, now: datetime) -> Plan:
        role_id, problem = await self._pingable(poll, now)
        if role_id is not None:
            counts = await self.store.counts(poll.id)
            # The version a close has is the same on every retry of it, and differs after a reopen.
            nonce = f"pc{poll.id}v{poll.version}"
            await self._spend(poll.channel_id, "post")
            await self.discord.create_message(
                poll.channel_id, message.closing_ping(poll, role_id, counts, nonce)
            )
        return problem

    async def _edit(self, poll: PollRecord) -> None:
        if poll.message_id is None:
            return
        payload = await self._current(poll)
        await self._spend(poll.channel_id, "edit")
        await self.discord.edit_message(poll.channel_id, poll.message_id, payload)

    async def _spend(self, channel_id: int, kind: str) -> None:
        """Wait for Discord's limits to allow one more call, unless that wait (and the call)
        would outlast the lease: then the work is postponed (Postponed)."""
        if self.budget is None:
            return
        within = self.lease.total_seconds() - self.discord_timeout - LEASE_MARGIN
        wait = await self.budget.spend(
            Limit("global", self.limits.global_per_second, 1.0),
            Limit(f"channel:{channel_id}:{kind}", self.limits.per_channel, self.limits.channel_window),
            within=max(0.0, within),
        )
        if wait is not None:
            raise Postponed(wait)

    async def _current(self, poll: PollRecord) -> dict[str, Any]:
        live = poll.status is Status.CLOSED or poll.results_visibility is Visibility.LIVE
        counts = await self.store.counts(poll.id) if live and poll.status is not Status.CANCELLED else None
        return message.current(poll, counts)

    async def _pingable(self, poll: PollRecord, now: datetime) -> tuple[int | None, Plan]:
        """The poll's role if the bot can ping it in the poll's channel now, else no ping and
        the problem that says why."""
        role_id = poll.ping_role_id
        if role_id is None:
            return None, _NO_PROBLEM
        snapshot = await self.snapshots(poll.guild_id)
        if snapshot is None or snapshot.absent is not None:
            return None, _problem(
                "PING_ROLE_UNCHECKED",
                f"Role {role_id} was not pinged: the guild's roles could not be read.",
                now,
            )
        try:
            validation = validate_role(snapshot, role_id, bot_abilities(snapshot, poll.channel_id))
        except ChannelNotFound as error:
            return None, _problem("PING_ROLE_INVALID", f"Role {role_id} was not pinged: {error.message}", now)
        if validation.can_ping:
            return role_id, _NO_PROBLEM
        reason = "was deleted" if not validation.valid else rules.why_not_pingable(validation.reason)
        return None, _problem("PING_ROLE_INVALID", f"Role {role_id} was not pinged: it {reason}.", now)

    def _failed(self, poll: PollRecord, error: DiscordRestError, now: datetime) -> Plan:
        if isinstance(error, DiscordNotFound) and error.code in (UNKNOWN_CHANNEL, UNKNOWN_MESSAGE):
            gone = "CHANNEL_DELETED" if error.code == UNKNOWN_CHANNEL else "MESSAGE_DELETED"
            what = f"channel {poll.channel_id}" if error.code == UNKNOWN_CHANNEL else "its message"
            log.info("Poll %s ended: %s was deleted.", poll.id, what)
            status = Status.CANCELLED if poll.status is Status.CANCELLED else Status.CLOSED
            return {
                "status": status.value,
                "pending": None,
                "due_at": None,
                "attempts": 0,
                **_problem(
                    gone, f"The poll ended because {what} was deleted on Discord; its data is kept.", now
                ),
            }
        attempts = poll.attempts + 1
        retry = backoff(attempts)
        SCHEDULER_RETRIES.labels(_action(poll, {})).inc()
        if isinstance(error, DiscordUnreachable):
            code, text = "DISCORD_UNAVAILABLE", f"Discord failed ({error}); retrying in {retry.seconds} s."
        elif error.status == 403:
            code = "MISSING_PERMISSIONS"
            text = (
                f"The bot may not post in channel {poll.channel_id} (Discord: {error}); give it View Channel"
                f" and Send Messages there. Retrying in {retry.seconds} s."
            )
        else:
            code, text = (
                "DISCORD_REFUSED",
                f"Discord refused the poll's message ({error}); retrying in {retry.seconds} s.",
            )
        log.warning("Poll %s: %s", poll.id, text)
        return {"attempts": attempts, "due_at": now + retry, **_problem(code, text, now)}
