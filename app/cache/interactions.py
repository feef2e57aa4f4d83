"""Which Discord interactions were handled: Discord may deliver one twice (a resumed gateway
session, two shards' processes), and a click must count once."""

from __future__ import annotations

from app.cache.connection import CacheUnavailable
from app.cache.role_cache import RoleCache

# An interaction's token lives 15 minutes; nothing can deliver it again after that.
REMEMBERED_SECONDS = 900


class InteractionLog:
    def __init__(self, cache: RoleCache) -> None:
        self._cache = cache

    async def first(self, interaction_id: int) -> bool:
        """Whether this is the first time ``interaction_id`` is seen (marking it seen). While
        Redis is down every one counts as first: the ballot's own rules (a click sets, or
        toggles) are what guards then."""
        key = self._cache.keys.interaction(interaction_id)
        try:
            marked = await self._cache.breaker.call(
                lambda: self._cache.redis.set(key, b"1", nx=True, ex=REMEMBERED_SECONDS)
            )
        except CacheUnavailable:
            return True
        return bool(marked)
