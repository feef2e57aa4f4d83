"""One record per HTTP request: what the request line in the log says, and what the request
metrics count. The application starts it when a request arrives; the layers below fill in what
only they know (the operation, the cache's answer, who asked) through :func:`current`."""

from __future__ import annotations

import contextvars
import logging
import secrets
from dataclasses import dataclass

from app.telemetry import logs, metrics

log = logging.getLogger("polly.requests")

_current: contextvars.ContextVar[RequestRecord | None] = contextvars.ContextVar("polly_request", default=None)

# Paths other than /graphql, as request labels: a fixed set, whatever paths clients try.
_PATH_LABELS = {
    "/healthz": "(healthz)",
    "/readyz": "(readyz)",
    "/metrics": "(metrics)",
    "/": "(page)",
}
# Probes and scrapes arrive every few seconds from machines: their lines are DEBUG.
_QUIET = frozenset({"/healthz", "/readyz", "/metrics"})


def path_label(path: str) -> str:
    if path in _PATH_LABELS:
        return _PATH_LABELS[path]
    if path.startswith("/static/"):
        return "(static)"
    if path.startswith("/auth/"):
        return "(auth)"
    if path.startswith("/polls/") and path.endswith("/results.csv"):
        return "(results.csv)"
    return "(other)"


@dataclass(slots=True)
class RequestRecord:
    id: str
    method: str
    path: str
    operation: str | None = None  # a label (metrics.operation_label), set by the GraphQL endpoint
    cache: str | None = None  # hit, miss, stored, refused, stale, degraded
    principal_kind: str | None = None
    principal_id: str | None = None
    errors: bool = False  # a 200 that carries GraphQL errors

    def outcome(self, status: int) -> str:
        if status == 429:
            return "rate_limited"
        if status >= 500:
            return "failed"
        if status >= 400:
            return "refused"
        return "errors" if self.errors else "ok"


def begin(method: str, path: str) -> RequestRecord:
    """A new request: its id goes on every line logged while it is answered."""
    record = RequestRecord(secrets.token_hex(8), method, path)
    _current.set(record)
    logs.set_about(request_id=record.id)
    return record


def current() -> RequestRecord | None:
    return _current.get()


def finish(record: RequestRecord, status: int, seconds: float, *, log_requests: bool) -> None:
    operation = record.operation or path_label(record.path)
    metrics.REQUESTS.labels(operation, record.outcome(status)).inc()
    metrics.REQUEST_SECONDS.labels(operation).observe(seconds)
    if not log_requests:
        return
    level = logging.DEBUG if record.path in _QUIET else logging.INFO
    if not log.isEnabledFor(level):
        return
    duration_ms = round(seconds * 1000, 2)
    log.log(
        level,
        "%s %s %s %.2f ms",
        record.method,
        record.path,
        status,
        duration_ms,
        extra={
            "fields": {
                "method": record.method,
                "path": record.path,
                "operation": record.operation,
                "status": status,
                "duration_ms": duration_ms,
                "cache": record.cache,
                "principal_kind": record.principal_kind,
                "principal_id": record.principal_id,
            }
        },
    )
