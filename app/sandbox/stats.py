"""Counts of REST calls by method and route template, and of answers by status (429s
included), for tests and benchmarks."""

from __future__ import annotations

from collections import Counter


class CallStats:
    def __init__(self) -> None:
        self._by_route: Counter[str] = Counter()
        self._by_status: Counter[str] = Counter()

    def count(self, method: str, route: str) -> None:
        self._by_route[f"{method} {route}"] += 1

    def answered(self, status: int) -> None:
        self._by_status[str(status)] += 1

    def reset(self) -> None:
        self._by_route.clear()
        self._by_status.clear()

    def snapshot(self) -> dict[str, object]:
        return {
            "total": sum(self._by_route.values()),
            "by_route": dict(sorted(self._by_route.items())),
            "by_status": dict(sorted(self._by_status.items())),
        }
