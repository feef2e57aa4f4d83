"""Snowflake ids as Discord makes them: milliseconds since 2015 in the top 42 bits."""

from __future__ import annotations

import time

DISCORD_EPOCH_MS = 1_420_070_400_000


def snowflake_at(unix_ms: int, increment: int = 0) -> int:
    return ((unix_ms - DISCORD_EPOCH_MS) << 22) | (increment & 0xFFF)


class SnowflakeGenerator:
    """New ids for created roles and messages: unique, growing, and carrying the time."""

    def __init__(self, worker: int = 1) -> None:
        self._worker_bits = (worker & 0x3FF) << 12
        self._last_ms = 0
        self._increment = 0

    def next(self) -> int:
        now_ms = int(time.time() * 1000)
        if now_ms <= self._last_ms:
            self._increment += 1
            if self._increment > 0xFFF:
                self._last_ms += 1
                self._increment = 0
            now_ms = self._last_ms
        else:
            self._increment = 0
        self._last_ms = now_ms
        return ((now_ms - DISCORD_EPOCH_MS) << 22) | self._worker_bits | self._increment
