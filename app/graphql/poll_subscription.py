"""The ``pollUpdated`` subscription: every change of a guild's polls (or of one), with the poll
and its results as the subscriber may see them, replayed from ``since`` like guildRolesChanged."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from enum import Enum

import strawberry
from strawberry.types import Info

from app.access.errors import Unauthenticated
from app.access.policy import READ_POLLS, allows, authorize
from app.graphql.context import RequestContext
from app.graphql.poll_types import Poll
from app.graphql.poll_types import poll_id as parse_poll_id
from app.graphql.types import snowflake
from app.live.feed import GuildEvent, LiveFeed
from app.polls.events import PollChange
from app.roles.errors import InvalidInput, LiveUnavailable


@strawberry.enum(description="What happened to a poll.")
class PollChangeKind(Enum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    OPENED = "OPENED"
    VOTES_CHANGED = strawberry.enum_value("VOTES_CHANGED", description="Votes came; bursts are coalesced.")
    CLOSED = "CLOSED"
    REOPENED = "REOPENED"
    CANCELLED = "CANCELLED"
    DELETED = "DELETED"
    RESYNCED = strawberry.enum_value(
        "RESYNCED", description="Changes may have been missed: read the poll (or the guild's polls) again."
    )


KNOWN = {change.value for change in PollChange}


@strawberry.type(description="One change of a poll, with the poll as it is now (null once deleted).")
class PollUpdated:
    guild_id: strawberry.ID
    poll_id: strawberry.ID | None = strawberry.field(description="Null for a guild-wide RESYNCED.")
    kind: PollChangeKind
    event_id: str | None = strawberry.field(description="Pass it as `since` when reconnecting.")
    at: datetime
    poll: Poll | None


async def _poll(context: RequestContext, poll_id_: int, event_id: str | None) -> Poll | None:
    # A loader of its own for each message: a loader remembers what it read, and a
    # subscription lives longer than one request.
    fresh = context.fresh(request_id=context.request_id)
    if context.poll_reads is None:
        readable = await fresh.poll_loader.poll_or_none(poll_id_)
        return None if readable is None else Poll.of(readable, fresh.poll_loader)
    record, results = await context.poll_reads.get(poll_id_, event_id)
    if record is None or record.deleted or not allows(context.principal, record.guild_id, READ_POLLS):
        return None
    fresh.poll_loader.prime([record])
    fresh.poll_loader.prime_results(record.id, results)
    return Poll.of(record, fresh.poll_loader)


async def poll_updated(
    info: Info[RequestContext, None],
    guild_id: strawberry.ID,
    poll_id: strawberry.ID | None = None,
    since: str | None = None,
) -> AsyncGenerator[PollUpdated, None]:
    context = info.context
    guild = snowflake(guild_id, "guildId")
    only = None if poll_id is None else parse_poll_id(poll_id, "pollId")
    if since is not None and not LiveFeed.is_event_id(since):
        raise InvalidInput(
            f"since must be an eventId received earlier (like 1700000000000-0), not {since[:40]!r}."
        )
    authorize(context.principal, guild, READ_POLLS)
    live = context.poll_live
    if live is None:
        raise LiveUnavailable("Poll subscriptions are not served here.")
    async with contextlib.aclosing(live.events(guild, since, live=not context.replay_only)) as events:
        async for item in events:
            event_id: str | None
            if isinstance(item, GuildEvent):
                if only is not None and item.poll_id != only:
                    continue
                kind = item.kind if item.kind in KNOWN else "RESYNCED"
                event_id, about, at = item.id, item.poll_id, datetime.fromisoformat(item.at)
            else:
                kind, event_id, about, at = "RESYNCED", await live.latest_id(guild), only, datetime.now(UTC)
            if context.recheck is not None and (ended := await context.recheck()) is not None:
                raise Unauthenticated(ended)
            message = PollUpdated(
                guild_id=strawberry.ID(str(guild)),
                poll_id=None if about is None else strawberry.ID(str(about)),
                kind=PollChangeKind(kind),
                event_id=event_id,
                at=at,
                poll=None if about is None else await _poll(context, about, event_id),
            )
            if context.announce is not None:
                context.announce(event_id)
            yield message
