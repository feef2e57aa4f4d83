"""The ``guildRolesChanged`` subscription: a live role dropdown, never stale."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator
from datetime import UTC, datetime

import strawberry
from strawberry.types import Info

from app.access.errors import Unauthenticated
from app.access.policy import READ_ROLES, authorize
from app.graphql.context import RequestContext
from app.graphql.poll_subscription import PollUpdated, poll_updated
from app.graphql.types import GuildRolesChanged, GuildRolesChangeKind, Role, optional_id, snowflake
from app.live.feed import GuildEvent, LiveFeed
from app.roles.errors import InvalidInput, LiveUnavailable
from app.roles.pingability import pingable_roles
from app.roles.snapshot import GuildSnapshot

log = logging.getLogger(__name__)


def _roles(snapshot: GuildSnapshot, channel_id: int | None) -> list[Role]:
    return [Role.from_discord(role) for role in pingable_roles(snapshot, channel_id)]


def resync(snapshot: GuildSnapshot, channel_id: int | None, latest_event_id: str | None) -> GuildRolesChanged:
    """The full current state, for a subscriber who may have missed changes."""
    return GuildRolesChanged(
        guild_id=strawberry.ID(str(snapshot.guild_id)),
        kind=GuildRolesChangeKind.GUILD_RESYNCED,
        role_id=None,
        channel_id=None,
        version=snapshot.version,
        event_id=latest_event_id,
        at=datetime.now(UTC),
        pingable_roles=_roles(snapshot, channel_id),
    )


def change(event: GuildEvent, snapshot: GuildSnapshot, channel_id: int | None) -> GuildRolesChanged:
    """Raises ValueError for an event this API does not know how to describe."""
    return GuildRolesChanged(
        guild_id=strawberry.ID(str(event.guild_id)),
        kind=GuildRolesChangeKind(event.kind),
        role_id=optional_id(event.role_id),
        channel_id=optional_id(event.channel_id),
        version=event.version,
        event_id=event.id,
        at=datetime.fromisoformat(event.at),
        pingable_roles=_roles(snapshot, channel_id),
    )


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Every change of a guild's roles as it happens, with the new pingable roles (in "
        "`channelId`, if given). With `since` (an `eventId` received earlier), the changes after it are "
        "replayed first; if they are no longer kept, the first message is a GUILD_RESYNCED with the full "
        'list. `since: "0-0"` starts with the current list.'
    )
    async def guild_roles_changed(
        self,
        info: Info[RequestContext, None],
        guild_id: strawberry.ID,
        channel_id: strawberry.ID | None = None,
        since: str | None = None,
    ) -> AsyncGenerator[GuildRolesChanged, None]:
        context = info.context
        guild = snowflake(guild_id, "guildId")
        channel = None if channel_id is None else snowflake(channel_id, "channelId")
        if since is not None and not LiveFeed.is_event_id(since):
            raise InvalidInput(
                f"since must be an eventId received earlier (like 1700000000000-0), not {since[:40]!r}."
            )
        authorize(context.principal, guild, READ_ROLES)
        live = context.live
        if live is None:
            raise LiveUnavailable("Subscriptions are not served here.")
        # Unknown guilds and channels fail now, not at the first event.
        _roles(await context.roles.guild(guild), channel)
        # aclosing: when the subscription ends, the feed's own generator ends with it (and
        # leaves the hub) at once, not whenever the garbage collector gets to it.
        async with contextlib.aclosing(live.events(guild, since, live=not context.replay_only)) as events:
            async for item in events:
                message = None
                if isinstance(item, GuildEvent):
                    try:
                        message = change(item, await context.roles.guild(guild), channel)
                    except ValueError:
                        log.warning(
                            "Event %s of guild %s is not one this API knows; resyncing.", item.id, guild
                        )
                if message is None:
                    latest = await live.latest_id(guild)  # first: the list is at least this new
                    message = resync(await context.roles.guild(guild), channel, latest)
                if context.recheck is not None and (ended := await context.recheck()) is not None:
                    raise Unauthenticated(ended)
                if context.announce is not None:
                    context.announce(message.event_id)
                yield message

    poll_updated: AsyncGenerator[PollUpdated, None] = strawberry.subscription(
        resolver=poll_updated,
        description="Every change of a guild's polls (or, with `pollId`, of one) as it happens: the poll"
        " and its results as you may see them (null once deleted). Votes are coalesced. With `since`"
        " (an `eventId` received earlier), the changes after it are replayed first; if they are no"
        " longer kept, the first message is RESYNCED.",
    )
