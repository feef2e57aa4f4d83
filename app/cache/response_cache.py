"""Serialized GraphQL responses, served only while every guild they were computed from is still
at the version it was read at.

An entry carries those versions before its body, and a hit checks them before serving it: on
one Redis server inside the script that fetches the entry (scripts._FRESH), on a Redis Cluster
with one more round trip (the guilds' version counters live on other nodes). The check, not a
deletion, is what retires an entry when a guild changes: a response is kept under the caller's
hash tag (see keys.py) and its guilds under theirs, so no single script could write or drop it
together with a guild on a Redis Cluster. Entries of changed guilds just expire.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.cache.connection import CacheUnavailable
from app.cache.role_cache import RoleCache


def encode(body: bytes, versions: Mapping[int, int]) -> bytes:
    header = ",".join(f"{guild}={version}" for guild, version in sorted(versions.items()))
    return header.encode() + b"\n" + body


def decode(entry: bytes) -> tuple[dict[int, int], bytes] | None:
    """(guild versions, body) of an entry; None for anything this module did not write."""
    header, newline, body = entry.partition(b"\n")
    if not newline:
        return None
    versions: dict[int, int] = {}
    for part in filter(None, header.split(b",")):
        guild, equals, version = part.partition(b"=")
        if not equals or not guild.isdigit() or not version.isdigit():
            return None
        versions[int(guild)] = int(version)
    return versions, body


async def _current(roles: RoleCache, guilds: list[int]) -> list[int]:
    """The guilds' versions now, in one round trip (a pipeline: on a cluster, one per node)."""
    pipe = roles.redis.pipeline(transaction=False)
    for guild in guilds:
        pipe.get(roles.keys.guild_version(guild))
    values = await roles.breaker.call(pipe.execute)
    return [int(value or 0) for value in values]


async def fresh(roles: RoleCache, entry: bytes | None, *, checked: bool = False) -> bytes | None:
    """The answer an entry holds if none of its guilds changed since it was computed; None
    otherwise, or when Redis cannot tell now (the caller computes the answer afresh).
    ``checked``: the script that fetched it compared the versions already (one Redis server)."""
    if entry is None:
        return None
    decoded = decode(entry)
    if decoded is None:
        return None
    versions, body = decoded
    if not versions or checked:
        return body
    guilds = list(versions)
    try:
        current = await _current(roles, guilds)
    except CacheUnavailable:
        return None
    return body if current == [versions[guild] for guild in guilds] else None


class ResponseCache:
    def __init__(self, roles: RoleCache, *, ttl: int) -> None:
        self._roles = roles
        self.ttl = ttl

    async def put(self, name: str, body: bytes, versions: Mapping[int, int]) -> bool:
        """Keep ``body`` under ``name`` (a ``keys.response_name``), unless a guild it was
        computed from changed meanwhile (it could never be served)."""
        roles = self._roles
        key = roles.keys.response(name)
        try:
            guilds = list(versions)
            if guilds and await _current(roles, guilds) != [versions[guild] for guild in guilds]:
                return False
            entry = encode(body, versions)
            await roles.breaker.call(lambda: roles.redis.set(key, entry, ex=self.ttl))
        except CacheUnavailable:
            return False
        return True
