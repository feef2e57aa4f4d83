"""What every subscriber of one poll event reads, read once per process: the poll and its
results as they were when the first subscriber asked. Access and visibility are still judged
for each subscriber; only the reading is shared."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from app.polls.record import PollRecord
from app.storage.ballots import Results

Read = tuple[PollRecord | None, Results | None]

KEPT = 256  # events whose reads are kept: far more than subscribers lag behind


class EventReads:
    def __init__(self, read: Callable[[int], Awaitable[Read]]) -> None:
        self._read = read
        self._kept: OrderedDict[tuple[int, str], asyncio.Future[Read]] = OrderedDict()

    async def get(self, poll_id: int, event_id: str | None) -> Read:
        """The poll and results for ``event_id`` (read now if nobody did yet; an event without
        an id, a resync, is read afresh)."""
        if event_id is None:
            return await self._read(poll_id)
        key = (poll_id, event_id)
        found = self._kept.get(key)
        if found is None:
            found = asyncio.ensure_future(self._read(poll_id))
            self._kept[key] = found
            while len(self._kept) > KEPT:
                self._kept.popitem(last=False)
            # A failed read is not kept: the next subscriber tries again.
            found.add_done_callback(lambda done: self._forget_failed(key, done))
        return await asyncio.shield(found)

    def _forget_failed(self, key: tuple[int, str], done: asyncio.Future[Read]) -> None:
        if done.cancelled() or done.exception() is not None:
            self._kept.pop(key, None)
