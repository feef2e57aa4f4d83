"""The nonces of recent messages, for ``enforce_nonce``: a repeated create answers with the first.

Discord checks a nonce against the same author's messages of "the past few minutes"; the sandbox
keeps five minutes of them per channel and author, and at most ``capacity`` in all (the oldest go
first), so a client that sends a nonce with every message (discord.py does) cannot grow it
without bound.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

NONCE_TTL_SECONDS = 300.0
NONCE_CAPACITY = 10_000


@dataclass(frozen=True)
class Sent:
    """The message a nonce first created, and the nonce as that create gave it."""

    message_id: int
    nonce: str | int
    at: float


class NonceRecord:
    def __init__(
        self,
        *,
        ttl: float = NONCE_TTL_SECONDS,
        capacity: int = NONCE_CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.capacity = capacity
        # Replaceable, so tests can move time on without waiting for it.
        self.clock = clock
        self._sent: OrderedDict[tuple[int, int, str], Sent] = OrderedDict()

    @staticmethod
    def _key(channel_id: int, author_id: int, nonce: str | int) -> tuple[int, int, str]:
        # Discord compares nonces as text: 5 and "5" are the same nonce.
        return (channel_id, author_id, str(nonce))

    def _expire(self) -> None:
        now = self.clock()
        while self._sent:
            oldest = next(iter(self._sent.values()))
            if now - oldest.at < self.ttl:
                break
            self._sent.popitem(last=False)

    def find(self, channel_id: int, author_id: int, nonce: str | int) -> Sent | None:
        self._expire()
        return self._sent.get(self._key(channel_id, author_id, nonce))

    def remember(self, channel_id: int, author_id: int, nonce: str | int, message_id: int) -> None:
        self._expire()
        key = self._key(channel_id, author_id, nonce)
        # A nonce used again (without enforce_nonce) now names its latest message.
        self._sent.pop(key, None)
        self._sent[key] = Sent(message_id, nonce, self.clock())
        while len(self._sent) > self.capacity:
            self._sent.popitem(last=False)

    def __len__(self) -> int:
        self._expire()
        return len(self._sent)
