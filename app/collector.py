"""The garbage collector, kept from rescanning what lives as long as the process.

Once the API has started, its modules, schema and services live until it stops; every
collection of the oldest generation would walk them again. Frozen once, they are left out of
every later scan, and a full collection with thousands of sockets open costs what the sockets
cost, not the whole process.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect once, then keep everything alive now out of every later collection's scan."""
    gc.collect()
    gc.freeze()
