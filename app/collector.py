"""The garbage collector, kept from rescanning what lives as long as the process, and from
interrupting a broadcast.

Once the API has started, its modules, schema and services live until it stops; every
collection of the oldest generation would walk them again. Frozen once, they are left out of
every later scan, and a full collection with thousands of sockets open costs what the sockets
cost, not the whole process. A broadcast queues its messages with the collector paused (see
``paused``).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


def settle() -> None:
    """Collect once, then keep everything alive now out of every later collection's scan."""
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Holds off the cyclic garbage collector while a broadcast queues its messages: the thousands
    of send tasks it starts are alive until they run, and collections started meanwhile would
    scan them and promote them towards the oldest generation, whose growth brings on full
    collections (each hundreds of milliseconds with thousands of sockets open). Leaves a
    disabled collector alone; a collection that is due runs afterwards."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
