"""The Redis connection (one server, or a Redis Cluster), and a breaker that stops a dead Redis
from costing a timeout per call.

``POLLY_REDIS_URL`` names a cluster with the scheme ``redis+cluster://`` (``rediss+cluster://``
for TLS) and one or more of its nodes, comma-separated:
``redis+cluster://user:password@10.0.0.1:7000,10.0.0.2:7000/``. The client finds the rest of
the cluster from them. Everything else in the service takes either client alike: whatever a
cluster changes (sharded pub/sub, its errors) is decided in this package.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeAlias, TypeVar

import redis.asyncio as redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AskError,
    ClusterDownError,
    CrossSlotTransactionError,
    InvalidPipelineStack,
    LockError,
    MaxConnectionsError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)

from app.cache.cluster_url import is_cluster_url, parse_cluster_url
from app.telemetry.metrics import REDIS_ERRORS, REDIS_UP

# Answers that mean the server cannot do its job now (out of memory, a read-only replica,
# loading, ...), as opposed to a command it refuses for its arguments. redis-py raises OOM and
# READONLY as their own classes with the code cut off the message, hence the classes too.
_UNWELL = ("OOM", "READONLY", "MISCONF", "LOADING", "BUSY", "MASTERDOWN", "NOREPLICAS", "CLUSTERDOWN")
# On a cluster, a slot whose master is failing over answers CLUSTERDOWN, and one that moves
# answers MOVED, ASK or TRYAGAIN until redis-py's retries run out: the cluster is not healthy yet.
_UNWELL_CLASSES = (OutOfMemoryError, ReadOnlyError, ClusterDownError, TryAgainError, AskError)
# What a client raises when Redis cannot do its job. redis-py's cluster errors about the cluster
# as a whole (no node reachable, a slot no node serves) are not RedisErrors.
FAILURES = (RedisError, OSError, RedisClusterException)
# Mistakes of ours (keys of several slots in one command or transaction), never an outage.
_OUR_MISTAKES = (CrossSlotTransactionError, InvalidPipelineStack)
_CROSS_SLOT = "must map to the same key slot"  # redis-py's own check, a RedisClusterException

log = logging.getLogger(__name__)

T = TypeVar("T")


class CacheUnavailable(Exception):
    """Redis cannot be reached (or was not reachable a moment ago); callers fall back to Discord."""


# Either client: redis-py gives both the same commands, scripts, pipelines, locks and pubsub().
RedisClient: TypeAlias = redis.Redis | RedisCluster


def is_cluster(client: RedisClient) -> bool:
    return isinstance(client, RedisCluster)


def open_redis(url: str, *, timeout: float = 0.5, max_connections: int = 128) -> RedisClient:
    """A client for ``url``: one Redis server, or a Redis Cluster (``redis+cluster://``)."""
    if is_cluster_url(url):
        address = parse_cluster_url(url)
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in address.nodes],
            username=address.username,
            password=address.password,
            ssl=address.tls,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            max_connections=max_connections,  # per node
            # As below: a failing node fails a command within ``timeout``, and the breaker
            # opens; redis-py still follows MOVED and ASK, and refreshes the cluster's layout
            # after an error, so the breaker's next probe finds a promoted replica.
            retry=Retry(NoBackoff(), 0),
        )
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
        except _OUR_MISTAKES:
            raise
        except RedisClusterException as error:
            if _CROSS_SLOT in str(error):
                raise
            self._trip(error)
            raise CacheUnavailable(f"Redis is unavailable: {self.last_error}") from error
        except MaxConnectionsError as error:
            # A cluster node's connections are all in use (redis-py's cluster pool does not
            # wait): this call is refused, but Redis is not down.
            raise CacheUnavailable(f"Redis is busy: {error}") from error
        except ResponseError as error:
            if not isinstance(error, _UNWELL_CLASSES) and not str(error).startswith(_UNWELL):
                raise
            self._trip(error)
            raise CacheUnavailable(f"Redis is unavailable: {self.last_error}") from error
        except FAILURES as error:
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
