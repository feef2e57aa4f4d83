"""Discord's rate limits: per-route buckets keyed by major parameters, and a global limit.

Buckets use fixed windows the way Discord reports them: a bucket opens on its first request
and resets ``window`` seconds later. Every answer carries the ``X-RateLimit-*`` headers;
an exhausted bucket or global limit answers 429 with ``Via``, ``Retry-After`` and
``{"message", "retry_after", "global"}``.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field


class RateLimitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    global_per_second: int = Field(
        default=50, ge=1, description="Requests per second per bot, over all routes."
    )
    route_limit: int = Field(default=10, ge=1, description="Requests per window in one route bucket.")
    route_window: float = Field(
        default=1.0, gt=0, le=3600, description="Length of a route bucket's window (s)."
    )
    enabled: bool = True


@dataclass
class _Window:
    limit: int
    length: float
    reset_at: float = 0.0
    used: int = 0

    def take(self, now: float) -> bool:
        if now >= self.reset_at:
            self.reset_at = now + self.length
            self.used = 0
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def reset_after(self, now: float) -> float:
        return max(0.0, self.reset_at - now)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    headers: dict[str, str]
    retry_after: float = 0.0
    is_global: bool = False


def bucket_hash(route: str) -> str:
    """A stable, opaque bucket id per route template, like Discord's ``X-RateLimit-Bucket``."""
    return hashlib.sha1(route.encode()).hexdigest()[:32]


@dataclass
class RateLimiter:
    config: RateLimitConfig = field(default_factory=RateLimitConfig)
    _buckets: dict[tuple[str, str], _Window] = field(default_factory=dict)
    _global: dict[str, _Window] = field(default_factory=dict)

    def configure(self, config: RateLimitConfig) -> None:
        self.config = config
        self._buckets.clear()
        self._global.clear()

    def check(self, principal: str, route: str, major: str, *, global_limit: bool = True) -> Verdict:
        """Count one request of ``principal`` (a token) to ``route`` for ``major`` parameters;
        without ``global_limit`` (interaction routes) the global limit neither applies nor counts it."""
        if not self.config.enabled:
            return Verdict(True, {})
        now = time.time()
        glob = self._global.setdefault(principal, _Window(self.config.global_per_second, 1.0))
        if global_limit and not glob.take(now):
            retry = glob.reset_after(now)
            return Verdict(
                False,
                {"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global", **_retry_headers(retry)},
                retry_after=retry,
                is_global=True,
            )
        digest = bucket_hash(route)
        window = self._buckets.setdefault(
            (digest, f"{principal}:{major}"), _Window(self.config.route_limit, self.config.route_window)
        )
        allowed = window.take(now)
        reset_after = window.reset_after(now)
        headers = {
            "X-RateLimit-Limit": str(window.limit),
            "X-RateLimit-Remaining": str(window.remaining()),
            "X-RateLimit-Reset": f"{window.reset_at:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": digest,
        }
        if allowed:
            return Verdict(True, headers)
        headers.update({"X-RateLimit-Scope": "user", **_retry_headers(reset_after)})
        return Verdict(False, headers, retry_after=reset_after)


def _retry_headers(retry_after: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(retry_after))), "Via": "1.1 google"}


def limited_body(retry_after: float, *, is_global: bool) -> dict[str, object]:
    return {
        "message": "You are being rate limited.",
        "retry_after": round(retry_after, 3),
        "global": is_global,
        "code": 0,
    }
