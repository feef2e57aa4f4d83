"""Pub/sub announcements: plain channels on one Redis server, sharded channels on a cluster.

On a cluster a plain PUBLISH is copied to every node; a sharded one (SPUBLISH) stays on the
shard owning the channel's slot, which is why event channels carry their stream's hash tag
(see ``CacheKeys.announcements``): the script that appends an event can announce it on the
same slot. redis-py's cluster pub/sub follows a sharded channel to a new owner by itself
(after a failover, or slots moving), subscribing again there; callers learn of it as a new
``subscribed`` announcement of a channel they already held, meaning that announcements may
have been missed in between.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterPubSub, RedisCluster

from app.cache.connection import FAILURES, RedisClient

log = logging.getLogger(__name__)

_KINDS = {
    "subscribe": "subscribed",
    "ssubscribe": "subscribed",
    "unsubscribe": "unsubscribed",
    "sunsubscribe": "unsubscribed",
    "message": "message",
    "smessage": "message",
}


@dataclass(frozen=True, slots=True)
class Announcement:
    kind: str  # "subscribed" (confirmed, or subscribed again), "unsubscribed" or "message"
    channel: str
    data: Any  # a message's bytes


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def publish(client: RedisClient, channel: str, message: str | bytes) -> int:
    """Announce ``message`` on ``channel``; how many subscribers (of its shard) received it."""
    if isinstance(client, RedisCluster):
        return int(await client.spublish(channel, message))
    return int(await client.publish(channel, message))


class Channels:
    """One pub/sub connection (per cluster node with subscriptions, on a cluster). Raises the
    client's errors (``connection.FAILURES``): callers decide what an outage means to them."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._pubsub: PubSub = client.pubsub()

    @property
    def subscribed(self) -> bool:
        return bool(self._pubsub.subscribed)

    async def subscribe(self, channel: str) -> None:
        if isinstance(self._pubsub, ClusterPubSub):
            try:
                await self._pubsub.ssubscribe(channel)
            except FAILURES:
                await self._refresh_layout()  # the node it asked may be gone for good
                raise
        else:
            await self._pubsub.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        if isinstance(self._pubsub, ClusterPubSub):
            await self._pubsub.sunsubscribe(channel)
        else:
            await self._pubsub.unsubscribe(channel)

    async def next(self, wait: float) -> Announcement | None:
        """The next announcement, or None after ``wait`` seconds without one."""
        if isinstance(self._pubsub, ClusterPubSub):
            try:
                message = await self._pubsub.get_sharded_message(timeout=wait)
            except FAILURES:
                await self._refresh_layout()
                raise
        else:
            message = await self._pubsub.get_message(timeout=wait)
        if message is None:
            return None
        kind = _KINDS.get(_text(message["type"]))
        if kind is None:
            return None  # a pong, a pattern's message: nothing subscribed here
        return Announcement(kind, _text(message["channel"]), message["data"])

    async def _refresh_layout(self) -> None:
        """No node holding our subscriptions answers: ask the cluster who owns their slots now.
        The refresh tells the pub/sub connection, which subscribes again on the new owners
        (redis-py asks too, but waits seconds between asks while every poll fails)."""
        if isinstance(self._client, RedisCluster):
            try:
                await self._client.nodes_manager.initialize()
            except FAILURES as error:
                log.debug("Could not refresh the cluster's layout: %s", error)

    async def aclose(self) -> None:
        await self._pubsub.aclose()
