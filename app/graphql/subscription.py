"""The ``guildRolesChanged`` subscription: a live role dropdown, never stale."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime

import strawberry
from strawberry.types import Info

from app.cache.connection import CacheUnavailable
from app.cache.event_log import GuildEvent, parse_event_id
from app.discord.snowflake import parse_snowflake
from app.graphql.context import RequestContext
from app.graphql.types import GuildRolesChanged, GuildRolesChangeKind, Role
from app.live.source import guild_events
from app.roles.errors import InvalidInput, LiveUnavailable
from app.roles.pingability import pingable_roles
from app.roles.snapshot import GuildSnapshot


def _id(value: int | None) -> strawberry.ID | None:
    return None if value is None else strawberry.ID(str(value))


def _snowflake(value: str, argument: str) -> int:
    parsed = parse_snowflake(str(value))
    if parsed is None:
        raise InvalidInput(
            f"{argument} must be a Discord id (a snowflake: up to 20 digits), not {str(value)[:40]!r}."
        )
    return parsed


def message(
    event: GuildEvent | None, snapshot: GuildSnapshot, channel_id: int | None, latest_event_id: str | None
) -> GuildRolesChanged:
    """The subscription's message for ``event`` (None: a resync with the full current state)."""
    roles = [Role.from_discord(role) for role in pingable_roles(snapshot, channel_id)]
    if event is None:
        return GuildRolesChanged(
            guild_id=strawberry.ID(str(snapshot.guild_id)),
            kind=GuildRolesChangeKind.GUILD_RESYNCED,
            role_id=None,
            channel_id=None,
            version=snapshot.version,
            event_id=latest_event_id,
            at=datetime.now(UTC),
            pingable_roles=roles,
        )
    return GuildRolesChanged(
        guild_id=strawberry.ID(str(event.guild_id)),
        kind=GuildRolesChangeKind(event.kind),
        role_id=_id(event.role_id),
        channel_id=_id(event.channel_id),
        version=event.version,
        event_id=event.id,
        at=datetime.fromisoformat(event.at),
        pingable_roles=roles,
    )


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Every change of a guild's roles as it happens, with the new pingable roles (in "
        "`channelId`, if given). With `since` (an `eventId` received earlier), the changes after it are "
        "replayed first; if they are no longer kept, the first message is a GUILD_RESYNCED with the full "
        "list."
    )
    async def guild_roles_changed(
        self,
        info: Info[RequestContext, None],
        guild_id: strawberry.ID,
        channel_id: strawberry.ID | None = None,
        since: str | None = None,
    ) -> AsyncGenerator[GuildRolesChanged, None]:
        context = info.context
        guild = _snowflake(guild_id, "guildId")
        channel = None if channel_id is None else _snowflake(channel_id, "channelId")
        if since is not None and parse_event_id(since) is None:
            raise InvalidInput(
                f"since must be an eventId received earlier (like 1700000000000-0), not {since[:40]!r}."
            )
        if context.hub is None or context.events is None:
            raise LiveUnavailable("Subscriptions are not served here.")
        # Unknown guilds and channels fail now, not at the first event.
        pingable_roles(await context.roles.guild(guild), channel)
        try:
            async for item in guild_events(context.hub, context.events, guild, since):
                snapshot = await context.roles.guild(guild)
                if isinstance(item, GuildEvent):
                    yield message(item, snapshot, channel, item.id)
                else:
                    try:
                        latest = await context.events.latest_id(guild)
                    except CacheUnavailable:
                        latest = None
                    yield message(None, snapshot, channel, latest)
        except CacheUnavailable as error:
            raise LiveUnavailable(
                f"Live updates need Redis, which cannot be reached ({error}); retry shortly."
            ) from error
