"""One keep-alive schedule for every WebSocket of the process.

Each acknowledged socket gets its protocol's keep-alive message (graphql-transport-ws's
``ping``, graphql-ws's ``ka``) every ``interval`` seconds, and its caller's access checked
again every ``recheck_interval``. A timer per socket would re-arm thousands of timers every
few seconds (each a handle and a context for the garbage collector to sweep); here one task
wakes a few times a second and serves every socket that is due, in the order they joined.

uvicorn's own WebSocket ping is off where this runs (app/api/app.py): a peer that vanished is
found when the keep-alive messages go unacknowledged at the TCP level and its socket fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

# How late a beat may be, at most (a quarter of the period, if that is shorter): beats due
# this close together are served in one wake-up.
SLACK = 0.25


class Beat:
    """One socket's place in the schedule."""

    __slots__ = ("checking", "due", "ended", "ping", "recheck", "recheck_due")

    def __init__(
        self,
        ping: Callable[[], object],
        recheck: Callable[[], Awaitable[bool]] | None,
        due: float,
        recheck_due: float,
    ) -> None:
        self.ping = ping
        self.recheck = recheck
        self.due = due
        self.recheck_due = recheck_due
        self.checking = False
        self.ended = False

    def end(self) -> None:
        """Leave the schedule (the socket closed); dropped at its next turn."""
        self.ended = True


def later(due: float, period: float, now: float) -> float:
    """The next time after ``due``, a ``period`` on; a period from ``now`` if that has passed."""
    return due + period if due + period > now else now + period


class Heartbeat:
    def __init__(self, interval: float, recheck_interval: float) -> None:
        self.interval = interval
        self.recheck_interval = recheck_interval
        # Every beat comes round after the same period, so appending keeps the queue in due order.
        self.period = min(interval, recheck_interval)
        self.slack = min(SLACK, self.period / 4)
        self.beats: deque[Beat] = deque()
        self.rechecks: set[asyncio.Task[None]] = set()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def join(self, ping: Callable[[], object], recheck: Callable[[], Awaitable[bool]] | None = None) -> Beat:
        """Schedule a socket: ``ping`` sends its keep-alive message (without waiting), ``recheck``
        closes it if its caller's access changed and says whether it did."""
        now = asyncio.get_running_loop().time()
        beat = Beat(ping, recheck, now + self.period, now + self.recheck_interval)
        self.beats.append(beat)
        if self.task is None:
            self.task = asyncio.create_task(self.run(), name="websocket-heartbeat")
        if len(self.beats) == 1:
            self.wake.set()
        return beat

    @property
    def sockets(self) -> int:
        return sum(not beat.ended for beat in self.beats)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while self.beats and self.beats[0].ended:
                self.beats.popleft()
            if not self.beats:
                self.wake.clear()
                await self.wake.wait()
                continue
            delay = self.beats[0].due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay + self.slack)
            self.serve(loop.time())

    def serve(self, now: float) -> None:
        """Beat every socket due by ``now``, and put it back at the end of the queue."""
        beats = self.beats
        while beats and beats[0].due <= now:
            beat = beats.popleft()
            if beat.ended:
                continue
            # On the beat's own cadence, however late this wake-up; after a stall (the loop
            # held up longer than a period), from now.
            beat.due = later(beat.due, self.period, now)
            beats.append(beat)
            if beat.recheck is not None and beat.recheck_due <= now and not beat.checking:
                beat.recheck_due = later(beat.recheck_due, self.recheck_interval, now)
                beat.checking = True
                task = asyncio.create_task(self.check(beat, beat.recheck))
                self.rechecks.add(task)
                task.add_done_callback(self.rechecks.discard)
            beat.ping()

    async def check(self, beat: Beat, recheck: Callable[[], Awaitable[bool]]) -> None:
        try:
            if await recheck():
                beat.end()
        except Exception:
            log.exception("A socket's access could not be checked again; trying at its next turn.")
        finally:
            beat.checking = False

    async def close(self) -> None:
        tasks = [*self.rechecks, *([self.task] if self.task is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.task = None
