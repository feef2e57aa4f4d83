"""Serving the metrics: ``/metrics`` of the API, and the bot's own port.

With ``POLLY_METRICS_DIR`` set, the processes that share it (workers of one server) write their
values to files there, and whichever process is scraped reads them all (prometheus-client's
multiprocess mode): a scrape is the whole server's, not one worker's.
"""

from __future__ import annotations

import asyncio
import atexit
import os
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    disable_created_metrics,
    multiprocess,
    start_http_server,
)
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import Response

from app.telemetry import metrics
from app.telemetry.metrics_dir import MULTIPROCESS_VARIABLE


def _registry() -> CollectorRegistry:
    directory = os.environ.get(MULTIPROCESS_VARIABLE)
    if not directory:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


def start() -> None:
    """Called once per process when it starts serving."""
    # The *_created series double every counter's lines for a timestamp nobody charts.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    metrics.initialise()
    directory = os.environ.get(MULTIPROCESS_VARIABLE)
    if directory:
        pid = os.getpid()
        # A process that ends takes its live gauges (connections, subscriptions) with it.
        atexit.register(multiprocess.mark_process_dead, pid, directory)


def render(accept: str | None) -> tuple[bytes, str]:
    encode, content_type = choose_encoder(accept or "")
    return encode(_registry()), content_type


async def metrics_endpoint(request: Request) -> Response:
    # Reading every process's files is file I/O: off the event loop.
    body, content_type = await asyncio.to_thread(render, request.headers.get("accept"))
    return Response(body, headers={"Content-Type": content_type})


def serve_on_port(port: int, host: str) -> WSGIServer:
    """The bot's metrics on their own port (it serves no HTTP otherwise), from a thread."""
    start()
    server, _ = start_http_server(port, addr=host, registry=_registry())
    return server
