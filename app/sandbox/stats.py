"""Counts of REST calls by method and route template, for tests and benchmarks."""

from __future__ import annotations

from collections import Counter


class CallStats:
    def __init__(self) -> None:
        self._by_route: Counter[str] = Counter()

    def count(self, method: str, route: str) -> None:
        self._by_route[f"{method} {route}"] += 1

    def reset(self) -> None:
        self._by_route.clear()

    def snapshot(self) -> dict[str, object]:
        return {"total": sum(self._by_route.values()), "by_route": dict(sorted(self._by_route.items()))}
