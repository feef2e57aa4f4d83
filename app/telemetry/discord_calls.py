"""Discord REST calls as metrics, seen through aiohttp's tracing hooks.

discord.py takes an ``aiohttp.TraceConfig`` (``http_trace``) for its HTTP client; every request
it makes, each retry after a 429 included, passes through these hooks. Routes are labelled by
their template (``/channels/{id}/messages``): ids and interaction tokens never become labels.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import aiohttp

from app.telemetry import metrics

_API_PREFIX = re.compile(r"^/api(?:/v\d+)?")
# Path segments that are words of the API (channels, messages, @me, @original, callback)
# stay; anything else is an id or a token.
_WORD = re.compile(r"^@?[a-z][a-z0-9-]*$")
_TOKEN_AFTER = frozenset({"interactions", "webhooks"})


def route_template(path: str) -> str:
    segments = _API_PREFIX.sub("", path).strip("/").split("/")
    template: list[str] = []
    for index, segment in enumerate(segments):
        if index >= 2 and segments[index - 2] in _TOKEN_AFTER and not segment.isdigit():
            template.append("{token}")
        elif _WORD.match(segment):
            template.append(segment)
        else:
            template.append("{id}")
    return "/" + "/".join(template)


async def _request_end(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestEndParams
) -> None:
    status = params.response.status
    route = route_template(params.url.path)
    metrics.DISCORD_REQUESTS.labels(route, params.method, str(status)).inc()
    if status == 429:
        headers = params.response.headers
        scope = headers.get("X-RateLimit-Scope") or (
            "global" if headers.get("X-RateLimit-Global") else "user"
        )
        metrics.DISCORD_RATE_LIMITED.labels(scope if scope in ("global", "user", "shared") else "user").inc()
        try:
            wait = float(headers.get("Retry-After") or headers.get("X-RateLimit-Reset-After") or 0)
        except ValueError:
            wait = 0.0
        metrics.DISCORD_RATE_LIMIT_WAIT.inc(max(0.0, wait))


async def _request_failed(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestExceptionParams
) -> None:
    metrics.DISCORD_REQUESTS.labels(route_template(params.url.path), params.method, "0").inc()


def discord_trace() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(_request_end)
    trace.on_request_exception.append(_request_failed)
    return trace
