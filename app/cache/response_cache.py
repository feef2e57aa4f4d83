"""Serialized GraphQL responses, dropped together with the guild data they were computed from."""

from __future__ import annotations

from collections.abc import Mapping

from app.cache.connection import CacheUnavailable
from app.cache.role_cache import RoleCache


class ResponseCache:
    def __init__(self, roles: RoleCache, *, ttl: int) -> None:
        self._roles = roles
        self.ttl = ttl

    async def put(self, digest: str, body: bytes, versions: Mapping[int, int]) -> bool:
        """Keep ``body`` unless a guild it was computed from changed meanwhile."""
        try:
            return await self._roles.write_dependents(
                versions, {self._roles.keys.response(digest): body}, ttl=self.ttl
            )
        except CacheUnavailable:
            return False
