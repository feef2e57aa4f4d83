"""The interactions the sandbox has created (button clicks), and Discord's clock on each.

An interaction takes one initial response, within ``response_window`` seconds of its creation
(Discord: 3); after that, or for an id or token Discord never issued, the callback answers 10062
"Unknown interaction". Its token then serves follow-ups and the original response for
``token_ttl`` seconds (Discord: 15 minutes). Both windows are settings of the control API
(``/_sandbox/interactions/config``) and the clock is replaceable, so tests need not wait.

The store also counts what bots did with their interactions: created, answered in time, never
answered (the window closed first), answered late, and answered twice.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.sandbox.fixture import Message

# Message flags an interaction's messages use.
EPHEMERAL = 1 << 6
LOADING = 1 << 7
# Beyond this many, the oldest interactions are forgotten even within their token's lifetime,
# so a benchmark clicking for hours cannot grow the sandbox without bound.
INTERACTION_CAPACITY = 10_000

JSON = dict[str, Any]


class InteractionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    response_window: float = Field(
        default=3.0, gt=0, le=900, description="Seconds after creation the initial response is accepted."
    )
    token_ttl: float = Field(
        default=900.0, gt=0, le=86_400, description="Seconds the token serves follow-ups and @original."
    )


@dataclass
class Interaction:
    id: int
    token: str
    guild_id: int
    channel_id: int
    # The message whose button was clicked, and the button.
    message_id: int
    custom_id: str
    user_id: int
    created_at: float
    payload: JSON = field(default_factory=dict)
    # Set when the initial response is accepted, for the click waiting on it.
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    # The initial response as the bot sent it: {"type": N, "data": {...}}.
    response: JSON | None = None
    # The message the initial response made (type 4 or 5), if any, and whether only the user
    # who clicked sees it.
    original_id: int | None = None
    ephemeral: bool = False
    # Messages only the user who clicked sees (ephemeral responses and follow-ups), by id.
    private: dict[int, Message] = field(default_factory=dict)
    followup_ids: list[int] = field(default_factory=list)
    # No initial response is accepted any more (the window passed, or the click gave up waiting
    # at its end), and the store has counted it as answered or not.
    settled: bool = False

    @property
    def is_answered(self) -> bool:
        return self.response is not None


@dataclass
class InteractionStats:
    created: int = 0
    answered: int = 0
    unanswered: int = 0
    late_responses: int = 0
    duplicate_responses: int = 0

    def snapshot(self) -> dict[str, int]:
        return {item.name: getattr(self, item.name) for item in fields(self)}

    def reset(self) -> None:
        for item in fields(self):
            setattr(self, item.name, 0)


def new_token(interaction_id: int) -> str:
    """A token shaped like Discord's: unpadded URL-safe base64 of ``interaction:<id>:<secret>``."""
    raw = f"interaction:{interaction_id}:{secrets.token_urlsafe(48)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class InteractionStore:
    def __init__(
        self,
        config: InteractionConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        capacity: int = INTERACTION_CAPACITY,
    ) -> None:
        self.config = config or InteractionConfig()
        # Replaceable, so tests can move time on without waiting for it.
        self.clock = clock
        self.capacity = capacity
        self.stats = InteractionStats()
        self._by_id: OrderedDict[int, Interaction] = OrderedDict()
        self._by_token: dict[str, int] = {}
        # Interactions not yet settled, oldest first: the only ones whose window can close.
        self._pending: OrderedDict[int, Interaction] = OrderedDict()

    def add(self, interaction: Interaction) -> Interaction:
        self._forget_expired()
        self._by_id[interaction.id] = interaction
        self._by_token[interaction.token] = interaction.id
        self._pending[interaction.id] = interaction
        self.stats.created += 1
        while len(self._by_id) > self.capacity:
            _, oldest = self._by_id.popitem(last=False)
            self._settle(oldest)
            del self._by_token[oldest.token]
        return interaction

    def get(self, interaction_id: int) -> Interaction | None:
        self._forget_expired()
        return self._by_id.get(interaction_id)

    def by_token(self, token: str) -> Interaction | None:
        self._forget_expired()
        interaction_id = self._by_token.get(token)
        return None if interaction_id is None else self._by_id.get(interaction_id)

    def age(self, interaction: Interaction) -> float:
        return self.clock() - interaction.created_at

    def window_left(self, interaction: Interaction) -> float:
        """Seconds until the initial response is refused (0 once it is)."""
        if interaction.settled:
            return 0.0
        return max(0.0, self.config.response_window - self.age(interaction))

    def token_alive(self, interaction: Interaction) -> bool:
        return self.age(interaction) <= self.config.token_ttl

    def accept_response(self, interaction: Interaction, response: JSON) -> None:
        interaction.response = response
        interaction.settled = True
        self._pending.pop(interaction.id, None)
        self.stats.answered += 1
        interaction.answered.set()

    def close_window(self, interaction: Interaction) -> None:
        """No initial response is accepted from now on (the window has passed)."""
        self._settle(interaction)

    def snapshot(self) -> dict[str, int]:
        self._settle_closed()
        return self.stats.snapshot()

    def reset_stats(self) -> None:
        """Zero the counts. Interactions still waiting for an answer are left out of the new
        counts, as their creation is: they were created before the reset."""
        for interaction in self._pending.values():
            interaction.settled = True
        self._pending.clear()
        self.stats.reset()

    def _settle(self, interaction: Interaction) -> None:
        if not interaction.settled:
            interaction.settled = True
            self.stats.unanswered += 1
        self._pending.pop(interaction.id, None)

    def _settle_closed(self) -> None:
        # Created in order with one window for all: the oldest pending closes first.
        while self._pending:
            oldest = next(iter(self._pending.values()))
            if self.age(oldest) < self.config.response_window:
                break
            self._settle(oldest)

    def _forget_expired(self) -> None:
        self._settle_closed()
        lifetime = max(self.config.token_ttl, self.config.response_window)
        while self._by_id:
            oldest = next(iter(self._by_id.values()))
            if self.age(oldest) <= lifetime:
                break
            self._by_id.popitem(last=False)
            del self._by_token[oldest.token]
