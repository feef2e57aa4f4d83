"""The sandbox as one aiohttp application: REST under /api/v10, the gateway, and /_sandbox/."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiohttp import web

from app.sandbox import clicks, oauth
from app.sandbox.control import EXTRA_API_ROUTES, GATEWAY, control
from app.sandbox.faults import Faults
from app.sandbox.fixture import Fixture
from app.sandbox.gateway import HEARTBEAT_ACK_DELAY_MS, Gateway
from app.sandbox.ratelimit import RateLimitConfig, RateLimiter
from app.sandbox.rest import API_PREFIX, FAULTS, LIMITER, STATE, STATS, create_rest_app
from app.sandbox.state import SandboxState
from app.sandbox.stats import CallStats

log = logging.getLogger(__name__)


@dataclass
class Sandbox:
    """A running sandbox: its state, its counters, and the server answering on ``host:port``."""

    fixture: Fixture
    rate_limits: RateLimitConfig = field(default_factory=RateLimitConfig)
    heartbeat_interval_ms: int = 41250
    heartbeat_ack_delay_ms: int = HEARTBEAT_ACK_DELAY_MS

    def __post_init__(self) -> None:
        self.state = SandboxState(self.fixture)
        self.stats = CallStats()
        self.faults = Faults()
        self.limiter = RateLimiter(self.rate_limits)
        self.gateway = Gateway(
            self.state,
            heartbeat_interval_ms=self.heartbeat_interval_ms,
            heartbeat_ack_delay_ms=self.heartbeat_ack_delay_ms,
        )
        self._runner: web.AppRunner | None = None
        self.host = ""
        self.port = 0

    def application(self) -> web.Application:
        app = web.Application()
        app[STATE] = self.state
        app[STATS] = self.stats
        app[FAULTS] = self.faults
        app[LIMITER] = self.limiter
        app[GATEWAY] = self.gateway
        rest = create_rest_app(self.state, self.stats, self.faults, self.limiter, EXTRA_API_ROUTES)
        app.add_subapp(API_PREFIX, rest)
        app.router.add_routes(oauth.authorize_routes)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/gateway/resume", self.gateway.handle)
        app.add_routes(control)
        app.add_routes(clicks.control)
        app.on_shutdown.append(self._close_gateway)
        return app

    async def _close_gateway(self, _app: web.Application) -> None:
        await self.gateway.close()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        # A stop does not wait long for requests still held (a latency fault holds one for as
        # long as it was told): the sandbox is a stand-in, nobody depends on its last answers.
        self._runner = web.AppRunner(
            self.application(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.host = host
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/gateway"
