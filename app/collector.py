"""The garbage collector, kept from stalling a process that holds thousands of sockets.

CPython starts a young-generation collection after a number of new container objects, less
those freed. A process with thousands of idle WebSockets re-arms a keep-alive timer per socket
every few seconds: each new timer, handle and context replaces one freed, so the count stays
low while the youngest generation fills (seen at 5,000 sockets: 80,000 objects, 43 ms for one
collection, landing on whatever the event loop did next). Collecting the young generations on
a short timer keeps each pass to what arrived since the last one. And work that must not be
held up (a broadcast to every subscriber) runs with the collector paused.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Iterator

YOUNG_INTERVAL = 0.1  # seconds between collections of the youngest generation
MIDDLE_EVERY = 10  # the middle one every tenth time, as CPython's own threshold1


def settle() -> None:
    """Collect once, then keep everything alive now (modules, schema, services: the process's
    lifetime) out of every later collection's scan."""
    gc.collect()
    gc.freeze()


async def collect_young(interval: float = YOUNG_INTERVAL) -> None:
    """Collect the youngest generation every ``interval`` seconds and the middle one every
    ``MIDDLE_EVERY`` times, until cancelled. (Collecting the middle one every time would move
    everything older than ``interval`` into the oldest, and bring full collections sooner.)"""
    ticks = 0
    while True:
        await asyncio.sleep(interval)
        if gc.isenabled():
            ticks += 1
            gc.collect(1 if ticks % MIDDLE_EVERY == 0 else 0)


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Holds off the cyclic garbage collector: with thousands of sockets a full collection takes
    hundreds of milliseconds, and one that began mid-broadcast would hold up every socket after
    it. A collection that is due runs afterwards instead. Leaves a disabled collector alone."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
