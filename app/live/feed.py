"""A guild's changes as subscriptions see them: missed ones replayed first, then live ones.

This is the one door from the GraphQL layer to live events: the hub (Redis pub/sub) and the
event log (the Redis stream) stay behind it, and so do Redis's failures, which come out as
LiveUnavailable.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from app.cache.connection import CacheUnavailable
from app.cache.event_log import EventLog, GuildEvent, parse_event_id
from app.live.hub import RESYNC, EventHub, Item, Resync
from app.roles.errors import LiveUnavailable

__all__ = ["RESYNC", "GuildEvent", "Item", "LiveFeed", "Resync"]


class LiveFeed:
    def __init__(self, hub: EventHub, log: EventLog) -> None:
        self.hub = hub
        self._log = log

    @staticmethod
    def is_event_id(text: str) -> bool:
        return parse_event_id(text) is not None

    async def latest_id(self, guild_id: int) -> str | None:
        """The id of the guild's newest event (None: none kept, or Redis unreachable)."""
        try:
            return await self._log.latest_id(guild_id)
        except CacheUnavailable:
            return None

    async def events(
        self, guild_id: int, since: str | None, *, live: bool = True
    ) -> AsyncGenerator[Item, None]:
        """Events of ``guild_id`` after ``since`` (replayed from the stream), then, if ``live``,
        as they come.

        The live subscription starts before the replay is read, so nothing falls between the
        two, and events seen in both are sent once. When the stream no longer holds ``since``
        (or Redis cannot be read), the first item is RESYNC: send the full current state.
        """
        listener = None
        if live:
            try:
                listener = await self.hub.listen(guild_id)
            except CacheUnavailable as error:
                raise LiveUnavailable(
                    "Live updates need Redis, which cannot be reached now; retry shortly."
                ) from error
        try:
            last: tuple[int, int] | None = None
            if since is not None:
                try:
                    missed = await self._log.after(guild_id, since)
                except CacheUnavailable:
                    missed = None
                if missed is None:
                    yield RESYNC
                else:
                    for event in missed:
                        last = event.order
                        yield event
            while listener is not None:
                item = await listener.get()
                if isinstance(item, GuildEvent) and last is not None and item.order <= last:
                    continue  # already replayed
                yield item
        finally:
            if listener is not None:
                self.hub.leave(listener)
