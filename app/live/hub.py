"""One Redis pub/sub connection per API process, shared by every subscription.

The hub subscribes to a guild's channel while at least one listener wants that guild, and
hands each announced event to every listener in memory. A listener's queue is bounded: one
that falls behind loses its backlog and gets a single "resync" marker instead. When the
pub/sub connection breaks, every listener gets that marker once it is back (events may have
been missed meanwhile); so do a guild's listeners when its channel is subscribed again
without the hub asking (on a Redis Cluster, after a failover moved the channel's shard).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Final

from app.cache.channels import Channels
from app.cache.connection import FAILURES
from app.cache.event_log import GuildEvent, Stream
from app.cache.role_cache import RoleCache

log = logging.getLogger(__name__)


class Resync:
    """Events may have been missed: the consumer should send the full current state."""

    def __repr__(self) -> str:
        return "RESYNC"


RESYNC: Final = Resync()
Item = GuildEvent | Resync


class Listener:
    def __init__(self, guild_id: int, limit: int) -> None:
        self.guild_id = guild_id
        self._queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=limit)
        # A resync queued and not taken yet covers whatever is missed until it is taken: the
        # consumer reads the whole current state then.
        self._resync_queued = False

    def offer(self, item: Item) -> None:
        if item is RESYNC:
            if self._resync_queued:
                return
            self._resync_queued = True
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            # Behind by a whole queue: drop the backlog, ask for one resync instead.
            while not self._queue.empty():
                self._queue.get_nowait()
            self._resync_queued = True
            self._queue.put_nowait(RESYNC)

    async def get(self) -> Item:
        item = await self._queue.get()
        if item is RESYNC:
            self._resync_queued = False
        return item


class EventHub:
    def __init__(
        self,
        cache: RoleCache,
        *,
        queue_limit: int = 256,
        retry_interval: float = 1.0,
        stream: Stream | None = None,
    ) -> None:
        self._cache = cache
        self._stream = stream or cache.keys.guild_events
        self._queue_limit = queue_limit
        self._retry_interval = retry_interval
        self._listeners: dict[int, set[Listener]] = defaultdict(set)
        self._pubsub: Channels | None = None
        self._confirmed: dict[str, asyncio.Event] = {}
        # Confirmations of subscriptions this hub asked for and has not seen yet; any other
        # confirmation is redis-py subscribing again on its own, after a lost connection.
        self._awaiting: dict[str, int] = defaultdict(int)
        self._guild_of: dict[str, int] = {}
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._has_subscriptions = asyncio.Event()

    def channel(self, guild_id: int) -> str:
        return self._cache.channel(self._stream(guild_id))

    @property
    def guilds(self) -> int:
        """How many guilds this process holds a Redis subscription for."""
        return len(self._listeners)

    def listens_to(self, guild_id: int) -> bool:
        """Whether some subscriber of this process follows the guild."""
        return guild_id in self._listeners

    async def listen(self, guild_id: int, *, confirm_within: float = 2.0) -> Listener:
        """A listener for a guild's events, returned once Redis confirmed the subscription (so
        an event published from now on reaches it). Raises CacheUnavailable without Redis."""
        listener = Listener(guild_id, self._queue_limit)
        try:
            async with self._lock:
                first = not self._listeners[guild_id]
                self._listeners[guild_id].add(listener)
                channel = self.channel(guild_id)
                confirmed = self._confirmed.setdefault(channel, asyncio.Event())
                if first:
                    pubsub = self._ensure_pubsub()
                    self._guild_of[channel] = guild_id
                    self._awaiting[channel] += 1
                    try:
                        await self._cache.breaker.call(lambda: pubsub.subscribe(channel))
                    except BaseException:
                        self._seen_confirmation(channel)  # none is coming
                        raise
                    self._has_subscriptions.set()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that arrives as the wait completes, and the subscription would never end.
            try:
                async with asyncio.timeout(confirm_within):
                    await confirmed.wait()
            except TimeoutError:
                log.warning(
                    "Redis did not confirm the subscription to %s within %ss.", channel, confirm_within
                )
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # redis-py can swallow a cancellation that lands while it connects the pub/sub
                # connection; the caller asked to stop, so stop.
                raise asyncio.CancelledError
        except BaseException:
            # Cancelled or failed half-way (a client that left, Redis gone): undo, so that the
            # guild is subscribed again by the next listener instead of silently never.
            self.leave(listener)
            raise
        return listener

    def leave(self, listener: Listener) -> None:
        listeners = self._listeners.get(listener.guild_id)
        if listeners is None or listener not in listeners:
            return
        listeners.discard(listener)
        if not listeners:
            del self._listeners[listener.guild_id]
            channel = self.channel(listener.guild_id)
            self._confirmed.pop(channel, None)
            self._guild_of.pop(channel, None)
            if self._pubsub is not None:
                task = asyncio.ensure_future(self._unsubscribe(listener.guild_id))
                self._tasks.add(task)
                task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("Could not unsubscribe from a guild's events: %s", task.exception())

    async def _unsubscribe(self, guild_id: int) -> None:
        async with self._lock:
            if guild_id in self._listeners or self._pubsub is None:
                return  # someone listens again
            await self._pubsub.unsubscribe(self.channel(guild_id))

    def _ensure_pubsub(self) -> Channels:
        if self._pubsub is None:
            self._pubsub = self._cache.channels()
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(), name="event-hub")
        return self._pubsub

    async def _read(self) -> None:
        broken = False
        while True:
            pubsub = self._pubsub
            if pubsub is None or not pubsub.subscribed:
                self._has_subscriptions.clear()
                await self._has_subscriptions.wait()
                continue
            try:
                message = await pubsub.next(wait=1.0)
            except FAILURES as error:
                if not broken:
                    log.warning("Lost the Redis event subscription (%s); retrying.", error)
                broken = True
                await asyncio.sleep(self._retry_interval)
                continue
            if broken:
                broken = False
                log.warning("The Redis event subscription is back; subscribers resync.")
                for listeners in self._listeners.values():
                    for listener in listeners:
                        listener.offer(RESYNC)
            if message is None:
                continue
            if message.kind == "subscribed":
                self._confirm(message.channel)
                continue
            if message.kind != "message":
                continue
            try:
                announced = GuildEvent.from_announcement(message.data)
            except (ValueError, KeyError):
                log.warning("Ignoring a malformed event on %s.", message.channel)
                continue
            for listener in tuple(self._listeners.get(announced.guild_id, ())):
                listener.offer(announced)

    def _seen_confirmation(self, channel: str) -> bool:
        """Whether the hub was awaiting a confirmation of ``channel`` (now no longer)."""
        awaiting = self._awaiting.get(channel, 0)
        if awaiting <= 1:
            self._awaiting.pop(channel, None)
        else:
            self._awaiting[channel] = awaiting - 1
        return awaiting > 0

    def _confirm(self, channel: str) -> None:
        confirmed = self._confirmed.get(channel)
        if confirmed is not None:
            confirmed.set()
        if self._seen_confirmation(channel):
            return
        # Subscribed again without our asking: the connection to the channel's node was lost
        # and made anew (on a cluster, maybe to a replica promoted since). Events announced
        # in between reached nobody here.
        guild_id = self._guild_of.get(channel)
        listeners = tuple(self._listeners.get(guild_id, ())) if guild_id is not None else ()
        if listeners:
            log.info("Subscribed to %s again; its subscribers resync.", channel)
        for listener in listeners:
            listener.offer(RESYNC)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(*FAILURES):
                await self._pubsub.aclose()
