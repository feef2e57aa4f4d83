"""Faults injected through the control API: the next N matching calls fail or slow down."""

from __future__ import annotations

import itertools
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FaultRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str = Field(description='An HTTP method, or "*" for any.')
    route: str = Field(description='A route template such as "/guilds/{guild_id}/roles", or "*" for any.')
    status: Literal[429, 500, 502, 503, 504] | None = None
    count: int = Field(default=1, ge=1)
    retry_after: float = Field(default=1.0, ge=0, description="For 429: seconds the client must wait.")
    is_global: bool = Field(default=False, alias="global", description="For 429: a global rate limit.")
    latency_ms: int | None = Field(default=None, ge=0, le=120_000)
    id: int = 0

    @model_validator(mode="after")
    def _something_to_do(self) -> FaultRule:
        if self.status is None and self.latency_ms is None:
            raise ValueError("a fault needs a status (429, 500, 502, 503, 504), a latency_ms, or both")
        self.method = self.method.upper()
        return self

    def matches(self, method: str, route: str) -> bool:
        return self.method in ("*", method) and self.route in ("*", route)


class Faults:
    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def add(self, rule: FaultRule) -> FaultRule:
        rule.id = next(self._ids)
        self._rules.append(rule)
        return rule

    def clear(self) -> None:
        self._rules.clear()

    def active(self) -> list[FaultRule]:
        return list(self._rules)

    def take(self, method: str, route: str) -> FaultRule | None:
        """The first rule matching this call, consuming one of its uses."""
        for rule in self._rules:
            if rule.matches(method, route):
                rule.count -= 1
                if rule.count == 0:
                    self._rules.remove(rule)
                return rule
        return None
