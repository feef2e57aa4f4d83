"""Who lost access, told to every API process at once: a key revoked, a login ended, a user whose
guilds changed. Each process checks the connections of that caller again right away, instead of
at their next periodic recheck (up to a minute later).

Announcements go over one Redis pub/sub channel (``CacheKeys.access_changes``; sent by
``AccessCache.announce_change`` and ``polly keys revoke``). What is sent
names a caller, never a reason: each process asks the authenticator again, so a wrong or
forged announcement costs a recheck and can close nothing that is still allowed. When the
subscription is lost and comes back, every registered connection is checked again, since
announcements may have been missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.access.principal import Principal
from app.cache.access_cache import access_change, read_access_change
from app.cache.channels import Channels
from app.cache.connection import FAILURES
from app.cache.role_cache import RoleCache

log = logging.getLogger(__name__)

Recheck = Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Caller:
    """Whose access changed: ``kind`` is a PrincipalKind's value (USER or API_KEY), ``id`` the
    Discord user id or the key id."""

    kind: str
    id: str

    @classmethod
    def of(cls, principal: Principal) -> Caller:
        return cls(principal.kind.value, principal.id)

    def encode(self) -> str:
        return access_change(self.kind, self.id)


class AccessWatch:
    def __init__(self, cache: RoleCache, *, retry_interval: float = 1.0) -> None:
        self._cache = cache
        self._retry_interval = retry_interval
        self._connections: dict[Caller, set[Recheck]] = defaultdict(set)
        self._reader: asyncio.Task[None] | None = None
        self._pubsub: Channels | None = None
        self._checks: set[asyncio.Task[object]] = set()
        self.subscribed = asyncio.Event()

    def start(self) -> None:
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(), name="access-watch")

    def watch(self, principal: Principal, recheck: Recheck) -> Callable[[], None]:
        """Run ``recheck`` whenever ``principal``'s access is announced changed; returns the
        function that stops it (call it when the connection ends)."""
        caller = Caller.of(principal)
        self._connections[caller].add(recheck)

        def stop() -> None:
            rechecks = self._connections.get(caller)
            if rechecks is not None:
                rechecks.discard(recheck)
                if not rechecks:
                    del self._connections[caller]

        return stop

    @property
    def watched(self) -> int:
        """How many connections are watched."""
        return sum(len(rechecks) for rechecks in self._connections.values())

    def _recheck(self, rechecks: set[Recheck]) -> None:
        for recheck in tuple(rechecks):
            task = asyncio.ensure_future(recheck())
            self._checks.add(task)
            task.add_done_callback(self._checked)

    def _checked(self, task: asyncio.Task[object]) -> None:
        self._checks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("Checking a connection's access again failed: %s", task.exception())

    async def _read(self) -> None:
        try:
            await self._follow(None)
        finally:
            if self._pubsub is not None:
                with contextlib.suppress(*FAILURES):
                    await self._pubsub.aclose()

    async def _follow(self, pubsub: Channels | None) -> None:
        lost = False
        while True:
            try:
                if pubsub is None:
                    pubsub = self._pubsub = self._cache.channels()
                    await pubsub.subscribe(self._cache.keys.access_changes())
                message = await pubsub.next(wait=1.0)
            except FAILURES as error:
                self.subscribed.clear()
                if not lost:
                    log.warning("Lost the Redis access-change subscription (%s); retrying.", error)
                lost = True
                if pubsub is not None:
                    with contextlib.suppress(*FAILURES):
                        await pubsub.aclose()
                    pubsub = self._pubsub = None
                await asyncio.sleep(self._retry_interval)
                continue
            if message is None:
                continue
            if message.kind == "subscribed":
                # Confirmed again while subscribed: redis-py subscribed anew on its own (on a
                # cluster, on the shard's new master), and announcements may have been missed.
                again = lost or self.subscribed.is_set()
                self.subscribed.set()
                if again:
                    lost = False
                    log.warning("The access-change subscription is back; every connection is rechecked.")
                    for rechecks in tuple(self._connections.values()):
                        self._recheck(rechecks)
                continue
            if message.kind != "message":
                continue
            try:
                caller = Caller(*read_access_change(message.data))
            except ValueError:
                log.warning("Ignoring a malformed access announcement.")
                continue
            affected = self._connections.get(caller)
            if affected:
                self._recheck(affected)

    async def close(self) -> None:
        for task in (self._reader, *self._checks):
            if task is not None:
                task.cancel()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
