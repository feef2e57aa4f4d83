"""Every metric the service exports, defined in one place (as every Redis key is in cache/keys).

The names are a contract: ``deploy/prometheus/alerts.yml`` and ``deploy/grafana/polly.json``
use them, and a test checks that each name they use is exported with data. No label takes an
unbounded value: routes are templates, operation names are capped per process (see
:func:`operation_label`), and no guild, user or query text is ever a label.

Several processes sharing one port (``POLLY_METRICS_DIR``) use prometheus-client's
multiprocess mode; each gauge says how processes' values combine.
"""

from __future__ import annotations

import re
import threading

from prometheus_client import Counter, Gauge, Histogram

# Seconds, from a cached answer (~0.3 ms) to a Discord fill under a 429 (seconds).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Scheduler lag: due to done, from the scheduler's tick (0.5 s) to minutes behind.
LAG_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

# -- requests ----------------------------------------------------------------------------------

REQUESTS = Counter(
    "polly_requests",
    "HTTP requests answered, by GraphQL operation name (capped; see the README) and outcome.",
    ["operation", "outcome"],
)
REQUEST_SECONDS = Histogram(
    "polly_request_duration_seconds",
    "Server time from a request's arrival to the start of its answer.",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)

# -- caches -----------------------------------------------------------------------------------

RESPONSE_CACHE = Counter(
    "polly_response_cache",
    "Response cache lookups and stores: hit, miss, stored, refused (a guild changed meanwhile).",
    ["result"],
)
ROLE_CACHE_READS = Counter("polly_role_cache_reads", "Role cache keys read, by hit or miss.", ["result"])
ROLE_CACHE_WRITES = Counter(
    "polly_role_cache_writes",
    "Role cache writes, by result: written, or refused as older than what Redis holds.",
    ["result"],
)
STALE_ANSWERS = Counter(
    "polly_stale_answers", "Answers that served last known guild data while Discord could not be asked."
)
DEGRADED_ANSWERS = Counter(
    "polly_degraded_answers", "Answers computed from Discord directly because the cache was unavailable."
)
FILLS = Counter("polly_fills", "Guilds fetched from Discord into the cache, by result.", ["result"])
FILL_WAITS = Counter(
    "polly_fill_waits", "Requests that waited for another request's fetch of the same guild (single flight)."
)

# -- Discord ----------------------------------------------------------------------------------

DISCORD_REQUESTS = Counter(
    "polly_discord_requests",
    "REST calls to Discord by route template, method and HTTP status (0: no answer).",
    ["route", "method", "status"],
)
DISCORD_RATE_LIMITED = Counter(
    "polly_discord_rate_limited", "429 answers from Discord, by scope (global, user, shared).", ["scope"]
)
DISCORD_RATE_LIMIT_WAIT = Counter(
    "polly_discord_rate_limit_wait_seconds",
    "Seconds Discord's 429 answers asked the service to wait (Retry-After), summed.",
)

# -- subscriptions ----------------------------------------------------------------------------

OPEN_CONNECTIONS = Gauge(
    "polly_open_connections",
    "Open connections by transport: tcp (every HTTP connection), websocket, sse.",
    ["transport"],
    multiprocess_mode="livesum",
)
SUBSCRIPTIONS = Gauge(
    "polly_subscriptions",
    "Running subscriptions by transport: graphql-transport-ws, graphql-ws, sse.",
    ["transport"],
    multiprocess_mode="livesum",
)
FANOUT_MESSAGES = Counter(
    "polly_fanout_messages",
    "Shared subscription messages by how they left: direct (sent during the broadcast, the socket"
    " taking writes) or queued (the socket busy or paused: sent by its outbox).",
    ["path"],
)
DELIVERY_SECONDS = Histogram(
    "polly_delivery_seconds",
    "From a change's publication in Redis to its message being written to a subscriber's socket.",
    buckets=LATENCY_BUCKETS,
)

# -- polls ------------------------------------------------------------------------------------

POLLS = Gauge(
    "polly_polls",
    "Polls by status, as the poll scheduler last counted them in the database.",
    ["status"],
    multiprocess_mode="mostrecent",
)
VOTES = Counter(
    "polly_votes", "Votes and retractions by source (api, button) and result.", ["source", "result"]
)
SCHEDULER_LAG = Histogram(
    "polly_scheduler_lag_seconds",
    "From when a poll's work fell due (open, close, message update) to when it was done.",
    ["action"],
    buckets=LAG_BUCKETS,
)
SCHEDULER_RETRIES = Counter(
    "polly_scheduler_retries", "Poll work that failed and will be tried again, by action.", ["action"]
)

# -- storage ----------------------------------------------------------------------------------

DATABASE_ERRORS = Counter("polly_database_errors", "Database operations that failed (unreachable, locked).")
REDIS_ERRORS = Counter(
    "polly_redis_errors", "Redis commands that failed (down, timeout, out of memory, ...)."
)
REDIS_UP = Gauge(
    "polly_redis_up",
    "1 while Redis answers, 0 while it is known to be down (the breaker is open).",
    multiprocess_mode="livemin",
)

# -- the gateway bot --------------------------------------------------------------------------

GATEWAY_LATENCY = Gauge(
    "polly_gateway_latency_seconds",
    "Time between a gateway heartbeat and its acknowledgement, per shard.",
    ["shard"],
    multiprocess_mode="livemax",
)
GATEWAY_CONNECTED = Gauge(
    "polly_gateway_connected",
    "1 while the shard's gateway session is up.",
    ["shard"],
    multiprocess_mode="livemax",
)
GATEWAY_GUILDS = Gauge(
    "polly_gateway_guilds", "Guilds the bot's gateway sessions hold.", multiprocess_mode="livesum"
)
GATEWAY_EVENTS = Counter(
    "polly_gateway_events", "Gateway dispatches received, by kind (event name).", ["kind"]
)
GATEWAY_RESYNCS = Counter(
    "polly_gateway_resyncs",
    "Guilds rewritten from the gateway's full state (at connect, or after an outage).",
)

# The gateway's dispatch names are Discord's; anything else counts as "other".
_EVENT_NAME = re.compile(r"^[A-Z_]{1,48}$")


def event_kind(name: object) -> str:
    return name if isinstance(name, str) and _EVENT_NAME.match(name) else "other"


_OPERATION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_OPERATION_NAMES = 100
_operations: set[str] = set()
_operations_lock = threading.Lock()


def operation_label(name: str | None) -> str:
    """A client's ``operationName`` as a label: the first 100 distinct valid names a process
    sees keep their name; anything after, or not a GraphQL name, is "other"; none is "anonymous"."""
    if not name:
        return "anonymous"
    if name in _operations:
        return name
    if not _OPERATION_NAME.match(name):
        return "other"
    with _operations_lock:
        if len(_operations) >= MAX_OPERATION_NAMES:
            return "other"
        _operations.add(name)
    return name


def initialise() -> None:
    """Give every series an alert or panel reads a zero, so "no data" never hides "none yet"."""
    for result in ("hit", "miss", "stored", "refused"):
        RESPONSE_CACHE.labels(result)
    for result in ("hit", "miss"):
        ROLE_CACHE_READS.labels(result)
    for result in ("written", "refused"):
        ROLE_CACHE_WRITES.labels(result)
    for result in ("ok", "failed"):
        FILLS.labels(result)
    for scope in ("global", "user", "shared"):
        DISCORD_RATE_LIMITED.labels(scope)
    for transport in ("tcp", "websocket", "sse"):
        OPEN_CONNECTIONS.labels(transport)
    for transport in ("graphql-transport-ws", "graphql-ws", "sse"):
        SUBSCRIPTIONS.labels(transport)
    for action in ("open", "close", "update"):
        SCHEDULER_RETRIES.labels(action)
    for source in ("api", "button"):
        for result in ("recorded", "unchanged", "refused"):
            VOTES.labels(source, result)
