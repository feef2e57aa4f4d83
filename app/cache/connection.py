"""The Redis connection, and a breaker that stops a dead Redis from costing a timeout per call."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import LockError, OutOfMemoryError, ReadOnlyError, RedisError, ResponseError

from app.telemetry.metrics import REDIS_ERRORS, REDIS_UP

# Answers that mean the server cannot do its job now (out of memory, a read-only replica,
# loading, ...), as opposed to a command it refuses for its arguments. redis-py raises OOM and
# READONLY as their own classes with the code cut off the message, hence the classes too.
_UNWELL = ("OOM", "READONLY", "MISCONF", "LOADING", "BUSY", "MASTERDOWN", "NOREPLICAS", "CLUSTERDOWN")
_UNWELL_CLASSES = (OutOfMemoryError, ReadOnlyError)

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
        # No retries, said rather than left to redis-py's defaults (which have changed between
        # releases): a dead Redis must fail a command within ``timeout`` so the breaker opens.
        retry=Retry(NoBackoff(), 0),
    )
    return redis.Redis.from_pool(pool)  # owns the pool: aclose() disconnects it


class Breaker:
    """Fails fast while Redis is known to be down.

    After a failure, calls fail at once for ``cooldown`` seconds; then a single call probes
    Redis while the others keep failing fast, and its success closes the breaker. Any Redis
    error counts (a lost connection, a timeout, but also out-of-memory or a read-only
    replica): each means the cache cannot do its job, and Discord can answer instead. A
    command refused for its arguments is not an outage: that error passes through.
    """

    def __init__(self, cooldown: float = 1.0) -> None:
        self.cooldown = cooldown
        self._open_until = 0.0
        self._probing = False
        self.last_error: str | None = None

    @property
    def available(self) -> bool:
        return self.last_error is None or (time.monotonic() >= self._open_until and not self._probing)

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        probe = self.last_error is not None
        if probe:
            if not self.available:
                raise CacheUnavailable(f"Redis is unavailable: {self.last_error}")
            self._probing = True
        try:
            result = await operation()
        except LockError:
            raise  # about the lock's owner, not about Redis
        except ResponseError as error:
            if not isinstance(error, _UNWELL_CLASSES) and not str(error).startswith(_UNWELL):
                raise
            self._trip(error)
            raise CacheUnavailable(f"Redis is unavailable: {self.last_error}") from error
        except (RedisError, OSError) as error:
            self._trip(error)
            raise CacheUnavailable(f"Redis is unavailable: {self.last_error}") from error
        finally:
            if probe:
                self._probing = False
        if self.last_error is not None:
            log.warning("Redis is back.")
            self.last_error = None
            REDIS_UP.set(1)
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # redis-py can swallow a cancellation that lands while it talks to Redis; whoever
            # cancelled (a client gone, an operation stopped) asked this task to stop: stop.
            raise asyncio.CancelledError
        return result

    def _trip(self, error: Exception) -> None:
        REDIS_ERRORS.inc()
        REDIS_UP.set(0)
        if self.last_error is None:
            log.warning("Redis failed (%s); answering from Discord until it is back.", error)
        self.last_error = str(error) or type(error).__name__
        self._open_until = time.monotonic() + self.cooldown
