"""The API's garbage collection: the young generation never grows into a long pause."""

from __future__ import annotations

import asyncio
import gc

import pytest

from app import collector
from app.collector import collect_young

SLOTS = 20_000


async def replace_one_for_one(slots: list[list[int]], rounds: int) -> int:
    """Replace long-lived objects one for one, as thousands of sockets re-arming keep-alive
    timers do, giving the event loop real time between batches; the young generation's
    largest size seen."""
    largest = 0
    for _ in range(rounds):
        for index in range(len(slots)):
            slots[index] = [index]
            if index % 1000 == 0:
                largest = max(largest, len(gc.get_objects(0)))
                await asyncio.sleep(0.002)
    return largest


async def test_the_young_generation_stays_small_while_objects_are_replaced_one_for_one() -> None:
    if not gc.isenabled():
        pytest.skip("the garbage collector is disabled in this process")
    slots: list[list[int]] = [[index] for index in range(SLOTS)]
    gc.collect()
    unattended = await replace_one_for_one(slots, rounds=1)
    if unattended < SLOTS // 2:
        pytest.skip(f"this Python collects such churn by itself (young generation at most {unattended})")
    gc.collect()  # start from an empty young generation, as the collector leaves it
    collector = asyncio.create_task(collect_young(0.005))
    try:
        attended = await replace_one_for_one(slots, rounds=3)
    finally:
        collector.cancel()
        with pytest.raises(asyncio.CancelledError):
            await collector
    assert attended < SLOTS // 4, (unattended, attended)


def test_paused_holds_the_collector_off_and_gives_it_back_even_on_errors() -> None:
    if not gc.isenabled():
        pytest.skip("the garbage collector is disabled in this process")
    seen = []

    def broadcast() -> None:
        with collector.paused():
            seen.append(gc.isenabled())
            raise RuntimeError("a broadcast failed")

    with pytest.raises(RuntimeError):
        broadcast()
    assert seen == [False]
    assert gc.isenabled()
    gc.disable()
    try:
        with collector.paused():
            pass
        assert not gc.isenabled()  # someone else's choice stands
    finally:
        gc.enable()
