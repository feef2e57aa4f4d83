"""What resolvers see as ``info.context``: the request's loader and what the answer depended on."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from app.access.credentials import Credentials
from app.access.principal import Principal, anonymous
from app.errors import PollyError
from app.graphql.loaders import RolesLoader
from app.graphql.poll_loader import PollsLoader
from app.live.feed import LiveFeed
from app.polls.event_reads import EventReads
from app.polls.service import PollService
from app.polls.votes import VoteService
from app.roles.service import RoleService
from app.roles.snapshot import Stale


@dataclass
class RequestContext:
    roles: RoleService
    # Who asks; every read of guild data is authorized for them (app/access/policy.py).
    principal: Principal = field(default_factory=lambda: anonymous("internal"))
    request_id: str = field(default_factory=lambda: secrets.token_hex(8))
    max_guilds: int = 25
    # Live updates; None where a context serves no subscriptions.
    live: LiveFeed | None = None
    # Poll changes, likewise.
    poll_live: LiveFeed | None = None
    # Reads shared by every subscriber of one poll event in this process.
    poll_reads: EventReads | None = None
    # A shared subscription's private replay: stop after the missed events.
    replay_only: bool = False
    # Told each event's id just before its message is yielded, so that a shared subscription
    # knows which event each result belongs to.
    announce: Callable[[str | None], None] | None = None
    # Set by WebSocket transports to the connection-init payload (credentials may be in it).
    connection_params: object = None
    # What the connection presented, for transports that authenticate again later.
    credentials: Credentials | None = None
    # For streams no connection loop watches (SSE): why the caller may no longer receive what
    # it subscribed to, asked before each message; None while nothing changed.
    recheck: Callable[[], Awaitable[str | None]] | None = None
    # Why who a connection is could not be checked when it presented itself, if so: each of
    # its operations is refused with it.
    unavailable: PollyError | None = None
    # Guild data the answer was computed from, by version: a cached answer is dropped with it.
    versions: dict[int, int] = field(default_factory=dict)
    stale: dict[int, Stale] = field(default_factory=dict)
    # Polls; None where a context serves none (tests of the roles API alone).
    polls: PollService | None = None
    votes: VoteService | None = None
    # Set when the answer read data the response cache cannot tell changed (polls).
    uncacheable: bool = False
    loader: RolesLoader = field(init=False)
    poll_loader: PollsLoader = field(init=False)

    def __post_init__(self) -> None:
        self.loader = RolesLoader(
            self.roles, self.versions, self.stale, max_guilds=self.max_guilds, principal=self.principal
        )
        if self.polls is not None:
            self.poll_loader = PollsLoader(self.polls, self.principal, self._read_polls, self.votes)

    def _read_polls(self) -> None:
        self.uncacheable = True

    def act_as(self, principal: Principal) -> None:
        """The caller proved to be someone else (credentials in a WebSocket's init payload)."""
        self.principal = principal
        self.__post_init__()

    def fresh(self, **changes: Any) -> RequestContext:
        """A context for one more operation of the same client (a new loader, a new request id)."""
        base: dict[str, Any] = {
            "principal": self.principal,
            "max_guilds": self.max_guilds,
            "live": self.live,
            "poll_live": self.poll_live,
            "poll_reads": self.poll_reads,
            "connection_params": self.connection_params,
            "credentials": self.credentials,
            "recheck": self.recheck,
            "polls": self.polls,
            "votes": self.votes,
        }
        return RequestContext(self.roles, **{**base, **changes})

    @property
    def cacheable(self) -> bool:
        """Whether the answer may be served to later requests: not when built from stale data."""
        return not self.stale and not self.uncacheable
