"""The Redis connection, and a breaker that stops a dead Redis from costing a timeout per call."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

T = TypeVar("T")


class CacheUnavailable(Exception):
    """Redis cannot be reached (or was not reachable a moment ago); callers fall back to Discord."""


def open_redis(url: str, *, timeout: float = 0.5, max_connections: int = 128) -> redis.Redis:
    # A blocking pool: a burst of requests waits a moment for a free connection instead of
    # failing with "Too many connections" (which would look like Redis being down).
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=2.0,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry_on_timeout=False,
    )
    return redis.Redis.from_pool(pool)  # owns the pool: aclose() disconnects it


class Breaker:
    """After a Redis failure, calls fail fast for ``cooldown`` seconds, then one call tries again."""

    def __init__(self, cooldown: float = 1.0) -> None:
        self.cooldown = cooldown
        self._open_until = 0.0
        self.last_error: str | None = None

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._open_until

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        if not self.available:
            raise CacheUnavailable(f"Redis is unavailable: {self.last_error}")
        try:
            result = await operation()
        except (RedisConnectionError, RedisTimeoutError, OSError) as error:
            if self.last_error is None:
                log.warning("Redis failed (%s); answering from Discord until it is back.", error)
            self.last_error = str(error) or type(error).__name__
            self._open_until = time.monotonic() + self.cooldown
            raise CacheUnavailable(f"Redis is unavailable: {self.last_error}") from error
        if self.last_error is not None:
            log.warning("Redis is back.")
            self.last_error = None
        return result
