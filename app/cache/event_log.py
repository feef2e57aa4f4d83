"""A guild's event stream in Redis: what the gateway bot appended, read back for replay."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import orjson
from redis.exceptions import ResponseError

from app.cache.role_cache import RoleCache

_STREAM_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_MAX_PART = 2**64 - 1
REPLAY_LIMIT = 10_000


def parse_event_id(text: str) -> tuple[int, int] | None:
    """A stream id ("1700000000000-0") as a comparable pair, or None if Redis would not take
    it as one."""
    match = _STREAM_ID.fullmatch(text)
    if match is None:
        return None
    parts = (int(match.group(1)), int(match.group(2)))
    return parts if all(part <= _MAX_PART for part in parts) else None


@dataclass(frozen=True)
class GuildEvent:
    id: str
    guild_id: int
    kind: str
    role_id: int | None
    channel_id: int | None
    version: int
    at: str
    poll_id: int | None = None  # poll events only

    @property
    def order(self) -> tuple[int, int]:
        return parse_event_id(self.id) or (0, 0)

    @classmethod
    def from_fields(cls, event_id: str, fields: dict[str, Any]) -> GuildEvent:
        def number(name: str) -> int | None:
            value = fields.get(name)
            return int(value) if value not in (None, "", b"") else None

        return cls(
            id=event_id,
            guild_id=int(fields["guild_id"]),
            kind=str(fields["kind"]),
            role_id=number("role_id"),
            channel_id=number("channel_id"),
            version=int(fields["version"]),
            at=str(fields["at"]),
            poll_id=number("poll_id"),
        )

    @classmethod
    def from_announcement(cls, raw: bytes | str) -> GuildEvent:
        """From the JSON the bot publishes on the guild's pub/sub channel."""
        data = orjson.loads(raw)
        return cls.from_fields(str(data["id"]), data)


# Which stream of a guild: its role changes (guild_events), or its polls' (poll_events).
Stream = Callable[[int], str]


class EventLog:
    def __init__(self, cache: RoleCache, stream: Stream | None = None) -> None:
        self._cache = cache
        self._stream = stream or cache.keys.guild_events

    async def after(self, guild_id: int, since: str) -> list[GuildEvent] | None:
        """The events after ``since``, oldest first; None when the stream no longer holds
        ``since`` itself (it was trimmed away, or never existed) or holds more than a replay
        sends, so some would be missing."""
        if parse_event_id(since) is None:
            return None
        key = self._stream(guild_id)
        try:
            entries = cast(
                list[tuple[Any, Any]],
                await self._cache.breaker.call(
                    lambda: self._cache.redis.xrange(key, min=since, max="+", count=REPLAY_LIMIT + 1)
                ),
            )
        except ResponseError:
            return None  # Redis does not take it as an id after all: nothing to replay from
        if not entries or _text(entries[0][0]) != since or len(entries) > REPLAY_LIMIT:
            return None
        return [GuildEvent.from_fields(_text(entry_id), _decode(fields)) for entry_id, fields in entries[1:]]

    async def latest_id(self, guild_id: int) -> str | None:
        key = self._stream(guild_id)
        entries = cast(
            list[tuple[Any, Any]],
            await self._cache.breaker.call(lambda: self._cache.redis.xrevrange(key, count=1)),
        )
        return _text(entries[0][0]) if entries else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode(fields: dict[Any, Any]) -> dict[str, str]:
    return {_text(key): _text(value) for key, value in fields.items()}
