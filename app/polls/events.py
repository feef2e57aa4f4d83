"""Telling subscribers a poll changed: one event per change, votes coalesced per poll.

A burst of votes becomes at most one VOTES_CHANGED event per poll per ``coalesce`` seconds
from each process; subscribers read the results when the event reaches them, so the last
message after a burst shows the exact final results.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from enum import Enum

from app.cache.connection import CacheUnavailable
from app.cache.poll_events import PollEventLog
from app.polls.record import PollRecord

log = logging.getLogger(__name__)


class PollChange(Enum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    OPENED = "OPENED"
    VOTES_CHANGED = "VOTES_CHANGED"
    CLOSED = "CLOSED"
    REOPENED = "REOPENED"
    CANCELLED = "CANCELLED"
    DELETED = "DELETED"


class PollEvents:
    def __init__(self, log_: PollEventLog, *, coalesce: float = 0.25) -> None:
        self._log = log_
        self.coalesce = coalesce
        self._waiting: dict[int, asyncio.Task[None]] = {}

    async def changed(self, poll: PollRecord, change: PollChange) -> None:
        """Announce a change now; while Redis is down it is lost to live subscribers, who
        resync when their subscription comes back."""
        try:
            await self._log.append(poll.guild_id, poll.id, change.value, poll.version)
        except CacheUnavailable as error:
            log.info("Poll %s's %s was not announced: %s", poll.id, change.value, error)

    def votes_changed(self, poll: PollRecord) -> None:
        """Announce new votes within ``coalesce`` seconds, once for all that came meanwhile."""
        if poll.id in self._waiting:
            return
        task = asyncio.create_task(self._announce_votes(poll), name=f"poll-{poll.id}-votes")
        self._waiting[poll.id] = task

    async def _announce_votes(self, poll: PollRecord) -> None:
        try:
            await asyncio.sleep(self.coalesce)
        finally:
            # Votes from now on need an event of their own (this one may read them, or not).
            self._waiting.pop(poll.id, None)
        await self.changed(poll, PollChange.VOTES_CHANGED)

    async def close(self) -> None:
        """Announce what is waiting, then stop."""
        waiting = list(self._waiting.values())
        for task in waiting:
            with contextlib.suppress(Exception):
                await task
