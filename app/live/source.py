"""One subscriber's view of a guild's events: the missed ones first (``since``), then live."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.cache.connection import CacheUnavailable
from app.cache.event_log import EventLog, GuildEvent
from app.live.hub import RESYNC, EventHub, Item


async def guild_events(hub: EventHub, log: EventLog, guild_id: int, since: str | None) -> AsyncIterator[Item]:
    """Events of ``guild_id`` after ``since`` (replayed from the stream) and then as they come.

    The live subscription starts before the replay is read, so nothing falls between the two;
    events seen in both are sent once. When the stream no longer holds ``since`` (or Redis
    cannot be read), the first item is RESYNC: the subscriber gets the full current state.
    """
    listener = await hub.listen(guild_id)
    try:
        last: tuple[int, int] | None = None
        if since is not None:
            try:
                missed = await log.after(guild_id, since)
            except CacheUnavailable:
                missed = None
            if missed is None:
                yield RESYNC
            else:
                for event in missed:
                    last = event.order
                    yield event
        while True:
            item = await listener.get()
            if isinstance(item, GuildEvent) and last is not None and item.order <= last:
                continue  # already replayed
            yield item
    finally:
        hub.leave(listener)
