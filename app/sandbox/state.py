"""The sandbox's in-memory Discord: lookups, Discord's checks, and the changes REST can make.

Every change is reported to a listener as the gateway dispatch Discord would send
(``GUILD_ROLE_CREATE``, ``CHANNEL_UPDATE``, ...), so REST and the gateway never disagree.
The acting user is always the bot: users' OAuth2 Bearer tokens only read (``app.sandbox.users``),
and users join or leave guilds only through the control API. Messages are ``app.sandbox.messages``'
business; their channels and the nonces of recent ones are kept here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.discord import permissions as perms
from app.sandbox import errors, shapes
from app.sandbox.bodies import (
    ChannelFields,
    MemberFields,
    OverwriteFields,
    RoleFields,
    RolePosition,
)
from app.sandbox.fixture import (
    MAX_ROLES,
    Channel,
    Fixture,
    Guild,
    Member,
    Message,
    Overwrite,
    Role,
    RoleTags,
    User,
)
from app.sandbox.interaction_store import InteractionStore
from app.sandbox.nonces import NonceRecord
from app.sandbox.oauth_store import OAuthStore
from app.sandbox.snowflake import SnowflakeGenerator

# Gateway intents (Discord's bit values) that gate each kind of dispatch.
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_MESSAGES = 1 << 9
# INTERACTION_CREATE goes to the guild's shard whatever the session's intents.
NO_INTENT = 0


@dataclass(frozen=True)
class Dispatch:
    """One gateway event: its name, its payload, and who may receive it."""

    name: str
    data: dict[str, Any]
    guild_id: int
    intent: int
    # Set for member updates: a session always receives its own member's updates.
    user_id: int | None = None


Listener = Callable[[Dispatch], None]


def role_rank(role: Role) -> tuple[int, int]:
    """Discord's role hierarchy: by position, and among equal positions the older role is higher."""
    return (role.position, -role.id)


@dataclass
class GuildState:
    guild: Guild
    roles: dict[int, Role]
    channels: dict[int, Channel]
    members: dict[int, Member]
    messages: dict[int, dict[int, Message]] = field(default_factory=dict)

    @classmethod
    def from_model(cls, guild: Guild) -> GuildState:
        return cls(
            guild=guild.model_copy(update={"roles": [], "channels": [], "members": []}),
            roles={role.id: role.model_copy() for role in guild.roles},
            channels={channel.id: channel.model_copy(update={"messages": []}) for channel in guild.channels},
            members={member.user_id: member.model_copy() for member in guild.members},
            messages={
                channel.id: {message.id: message.model_copy() for message in channel.messages}
                for channel in guild.channels
            },
        )

    def to_model(self) -> Guild:
        return self.guild.model_copy(
            update={
                "roles": self.sorted_roles(),
                "channels": [
                    channel.model_copy(update={"messages": list(self.messages.get(channel.id, {}).values())})
                    for channel in self.channels.values()
                ],
                "members": list(self.members.values()),
            }
        )

    @property
    def id(self) -> int:
        return self.guild.id

    def sorted_roles(self) -> list[Role]:
        """Lowest first, in Discord's hierarchy order."""
        return sorted(self.roles.values(), key=role_rank)

    def role_permissions(self) -> dict[int, int]:
        return {role.id: role.permissions for role in self.roles.values()}

    def permissions_of(self, user_id: int) -> int:
        member = self.members[user_id]
        return perms.base_permissions(
            guild_id=self.id,
            owner_id=self.guild.owner_id,
            member_id=user_id,
            member_role_ids=member.roles,
            role_permissions=self.role_permissions(),
        )

    def channel_permissions_of(self, user_id: int, channel: Channel) -> int:
        member = self.members[user_id]
        return perms.channel_permissions(
            self.permissions_of(user_id),
            guild_id=self.id,
            member_id=user_id,
            member_role_ids=member.roles,
            overwrites=[
                perms.Overwrite(o.id, o.type, o.allow, o.deny) for o in channel.permission_overwrites
            ],
        )

    def top_role_rank(self, user_id: int) -> tuple[int, int]:
        member = self.members[user_id]
        ranks = [role_rank(self.roles[role]) for role in member.roles if role in self.roles]
        return max(ranks, default=role_rank(self.roles[self.id]))


class SandboxState:
    def __init__(self, fixture: Fixture) -> None:
        self.bot = fixture.bot.model_copy()
        self.application = fixture.application.model_copy()
        self.shards = fixture.shards
        self.max_concurrency = fixture.max_concurrency
        self.users: dict[int, User] = {user.id: user.model_copy() for user in fixture.users}
        self.users[self.bot.id] = self.bot
        self.guilds: dict[int, GuildState] = {
            guild.id: GuildState.from_model(guild) for guild in fixture.guilds
        }
        self.channel_guild: dict[int, int] = {
            channel_id: guild.id for guild in self.guilds.values() for channel_id in guild.channels
        }
        self.ids = SnowflakeGenerator()
        self.oauth = OAuthStore()
        self.nonces = NonceRecord()
        self.interactions = InteractionStore()
        self._listeners: list[Listener] = []

    # -- plumbing -----------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def dispatch(self, event: Dispatch) -> None:
        for listener in self._listeners:
            listener(event)

    def to_fixture(self) -> Fixture:
        return Fixture(
            bot=self.bot,
            application=self.application,
            users=[user for user in self.users.values() if user.id != self.bot.id],
            guilds=[guild.to_model() for guild in self.guilds.values()],
            shards=self.shards,
            max_concurrency=self.max_concurrency,
        )

    # -- lookups --------------------------------------------------------------------------------

    def bot_guilds(self) -> list[GuildState]:
        return [guild for guild in self.guilds.values() if self.bot.id in guild.members]

    def guild(self, guild_id: int) -> GuildState:
        """A guild the bot is in: 10004 when unknown, 50001 when the bot is not a member."""
        guild = self.guilds.get(guild_id)
        if guild is None:
            raise errors.unknown("guild")
        if self.bot.id not in guild.members:
            raise errors.missing_access()
        return guild

    def channel(self, channel_id: int) -> tuple[GuildState, Channel]:
        guild_id = self.channel_guild.get(channel_id)
        if guild_id is None:
            raise errors.unknown("channel")
        guild = self.guilds[guild_id]
        if self.bot.id not in guild.members:
            raise errors.missing_access()
        channel = guild.channels[channel_id]
        if not guild.channel_permissions_of(self.bot.id, channel) & perms.VIEW_CHANNEL:
            raise errors.missing_access()
        return guild, channel

    def any_channel(self, channel_id: int) -> tuple[GuildState, Channel]:
        """A channel of any guild, as its owner sees it: 10003 when unknown, no access checks."""
        guild_id = self.channel_guild.get(channel_id)
        if guild_id is None:
            raise errors.unknown("channel")
        guild = self.guilds[guild_id]
        return guild, guild.channels[channel_id]

    def role(self, guild: GuildState, role_id: int) -> Role:
        role = guild.roles.get(role_id)
        if role is None:
            raise errors.unknown("role")
        return role

    def member(self, guild: GuildState, user_id: int) -> Member:
        member = guild.members.get(user_id)
        if member is None:
            raise errors.unknown("member" if user_id in self.users else "user")
        return member

    def member_json(self, guild: GuildState, member: Member) -> dict[str, Any]:
        return shapes.member_json(member, self.users.get(member.user_id))

    # -- Discord's checks ---------------------------------------------------------------------

    def _require(self, guild: GuildState, flag: int) -> None:
        if not perms.has(guild.permissions_of(self.bot.id), flag):
            raise errors.missing_permissions()

    def _require_below_bot(self, guild: GuildState, role: Role) -> None:
        """The bot may only manage roles strictly below its highest role (owners excepted)."""
        if self.bot.id == guild.guild.owner_id:
            return
        if role_rank(role) >= guild.top_role_rank(self.bot.id):
            raise errors.missing_permissions()

    def _require_grantable(self, guild: GuildState, bits: int) -> None:
        """Nobody may grant permissions they do not have themselves."""
        held = guild.permissions_of(self.bot.id)
        if bits & ~held:
            raise errors.missing_permissions()

    def leave_guild(self, guild_id: int) -> None:
        """The bot leaves a guild: Discord sends GUILD_DELETE without ``unavailable``."""
        guild = self.guild(guild_id)
        del guild.members[self.bot.id]
        self.dispatch(Dispatch("GUILD_DELETE", {"id": str(guild.id)}, guild.id, GUILDS))

    # -- roles ----------------------------------------------------------------------------------

    def create_role(self, guild_id: int, body: RoleFields) -> Role:
        guild = self.guild(guild_id)
        self._require(guild, perms.MANAGE_ROLES)
        if len(guild.roles) >= MAX_ROLES:
            raise errors.max_roles(MAX_ROLES)
        if body.permissions is not None:
            self._require_grantable(guild, body.permissions)
        everyone = guild.roles[guild.id]
        # Like Discord, a new role goes to position 1 without moving others; equal positions are
        # ordered by id (see role_rank).
        role = Role(
            id=self.ids.next(),
            name=body.name or "new role",
            permissions=everyone.permissions if body.permissions is None else body.permissions,
            position=1,
        )
        self._apply_role_fields(role, body)
        guild.roles[role.id] = role
        self.dispatch(Dispatch("GUILD_ROLE_CREATE", self._role_event(guild, role), guild.id, GUILDS))
        return role

    def update_role(self, guild_id: int, role_id: int, body: RoleFields, *, as_owner: bool = False) -> Role:
        """Edit a role as the bot (Discord's checks apply) or ``as_owner`` (the control API)."""
        guild = self.guild(guild_id) if not as_owner else self.guilds.get(guild_id) or self.guild(guild_id)
        role = self.role(guild, role_id)
        if not as_owner:
            self._require(guild, perms.MANAGE_ROLES)
            self._require_below_bot(guild, role)
            if body.permissions is not None:
                self._require_grantable(guild, body.permissions & ~role.permissions)
        if role.id == guild.id and body.given("name") and body.name not in (None, role.name):
            raise errors.field_error(("name",), "INVALID_ROLE_NAME", "The @everyone role cannot be renamed.")
        self._apply_role_fields(role, body)
        self.dispatch(Dispatch("GUILD_ROLE_UPDATE", self._role_event(guild, role), guild.id, GUILDS))
        return role

    def move_roles(self, guild_id: int, moves: list[RolePosition]) -> list[Role]:
        guild = self.guild(guild_id)
        self._require(guild, perms.MANAGE_ROLES)
        ordered = [role for role in guild.sorted_roles() if role.id != guild.id]
        wanted: dict[int, int] = {}
        for index, move in enumerate(moves):
            role = guild.roles.get(move.id)
            if role is None or role.id == guild.id:
                raise errors.field_error((index, "id"), "INVALID_ROLE", f"Role {move.id} cannot be moved.")
            self._require_below_bot(guild, role)
            if move.position is not None:
                if (
                    self.bot.id != guild.guild.owner_id
                    and move.position >= guild.top_role_rank(self.bot.id)[0]
                ):
                    raise errors.missing_permissions()
                wanted[role.id] = max(1, move.position)
        before = {role.id: role.position for role in ordered}
        moved = [role for role in ordered if role.id in wanted]
        staying = [role for role in ordered if role.id not in wanted]
        for role in sorted(moved, key=lambda r: wanted[r.id]):
            staying.insert(min(wanted[role.id] - 1, len(staying)), role)
        for position, role in enumerate(staying, start=1):
            role.position = position
        for role in staying:
            if before[role.id] != role.position:
                self.dispatch(Dispatch("GUILD_ROLE_UPDATE", self._role_event(guild, role), guild.id, GUILDS))
        return guild.sorted_roles()

    def delete_role(self, guild_id: int, role_id: int) -> None:
        guild = self.guild(guild_id)
        role = self.role(guild, role_id)
        self._require(guild, perms.MANAGE_ROLES)
        if role.id == guild.id:
            raise errors.invalid_role()
        self._require_below_bot(guild, role)
        if role.managed:
            raise errors.missing_permissions()
        del guild.roles[role.id]
        for member in guild.members.values():
            if role.id in member.roles:
                member.roles.remove(role.id)
        event = {"guild_id": str(guild.id), "role_id": str(role.id)}
        self.dispatch(Dispatch("GUILD_ROLE_DELETE", event, guild.id, GUILDS))

    @staticmethod
    def _apply_role_fields(role: Role, body: RoleFields) -> None:
        if body.name is not None:
            role.name = body.name
        if body.permissions is not None:
            role.permissions = body.permissions
        if body.colors is not None:
            role.color = body.colors.primary_color
            role.secondary_color = body.colors.secondary_color
            role.tertiary_color = body.colors.tertiary_color
        elif body.given("color"):
            role.color = body.color or 0
        if body.hoist is not None:
            role.hoist = body.hoist
        if body.mentionable is not None:
            role.mentionable = body.mentionable
        if body.given("icon"):
            role.icon = body.icon
        if body.given("unicode_emoji"):
            role.unicode_emoji = body.unicode_emoji

    @staticmethod
    def _role_event(guild: GuildState, role: Role) -> dict[str, Any]:
        return {"guild_id": str(guild.id), "role": shapes.role_json(role)}

    # -- channels -------------------------------------------------------------------------------

    def update_channel(self, channel_id: int, body: ChannelFields) -> tuple[GuildState, Channel]:
        guild, channel = self.channel(channel_id)
        if not perms.has(guild.channel_permissions_of(self.bot.id, channel), perms.MANAGE_CHANNELS):
            raise errors.missing_permissions()
        overwrites = None
        if body.permission_overwrites is not None:
            overwrites = self._checked_overwrites(
                guild, channel, body.permission_overwrites, "permission_overwrites"
            )
        if body.given("parent_id") and body.parent_id is not None and body.parent_id not in guild.channels:
            raise errors.field_error(("parent_id",), "CHANNEL_PARENT_INVALID", "Unknown category.")
        if overwrites is not None:
            channel.permission_overwrites = overwrites
        if body.name is not None:
            channel.name = body.name
        if body.given("topic"):
            channel.topic = body.topic
        if body.position is not None:
            channel.position = body.position
        if body.nsfw is not None:
            channel.nsfw = body.nsfw
        if body.given("parent_id"):
            channel.parent_id = body.parent_id
        self.dispatch(Dispatch("CHANNEL_UPDATE", shapes.channel_json(channel, guild.id), guild.id, GUILDS))
        return guild, channel

    def delete_channel(self, channel_id: int, *, as_moderator: bool = False) -> tuple[GuildState, Channel]:
        """Delete a channel and its messages, as the bot (MANAGE_CHANNELS in the channel) or
        ``as_moderator`` (the control API: nothing is asked of the bot). The channels of a deleted
        category stay, outside any category, as on Discord."""
        if as_moderator:
            guild, channel = self.any_channel(channel_id)
        else:
            guild, channel = self.channel(channel_id)
            if not perms.has(guild.channel_permissions_of(self.bot.id, channel), perms.MANAGE_CHANNELS):
                raise errors.missing_permissions()
        del guild.channels[channel.id]
        del self.channel_guild[channel.id]
        guild.messages.pop(channel.id, None)
        # Sessions hear only of guilds the bot is in (a moderator may act elsewhere).
        heard = self.bot.id in guild.members
        if heard:
            self.dispatch(
                Dispatch("CHANNEL_DELETE", shapes.channel_json(channel, guild.id), guild.id, GUILDS)
            )
        for child in guild.channels.values():
            if child.parent_id == channel.id:
                child.parent_id = None
                if heard:
                    data = shapes.channel_json(child, guild.id)
                    self.dispatch(Dispatch("CHANNEL_UPDATE", data, guild.id, GUILDS))
        return guild, channel

    def set_overwrite(self, channel_id: int, target_id: int, given: OverwriteFields | None) -> None:
        """``PUT`` (``given``) or ``DELETE`` (``None``) one overwrite: needs MANAGE_ROLES only."""
        guild, channel = self.channel(channel_id)
        kept = [o for o in channel.permission_overwrites if o.id != target_id]
        if given is None and len(kept) == len(channel.permission_overwrites):
            return
        fields = [OverwriteFields(id=o.id, type=o.type, allow=o.allow, deny=o.deny) for o in kept]
        if given is not None:
            fields.append(given)
        channel.permission_overwrites = self._checked_overwrites(guild, channel, fields, "overwrite")
        self.dispatch(Dispatch("CHANNEL_UPDATE", shapes.channel_json(channel, guild.id), guild.id, GUILDS))

    def _checked_overwrites(
        self, guild: GuildState, channel: Channel, given: list[OverwriteFields], field: str
    ) -> list[Overwrite]:
        """Discord's rules for changing overwrites: MANAGE_ROLES in the channel, and only
        permissions the bot holds in the guild may be allowed or denied — checked for the
        overwrites that change, not for those left as they were."""
        if not perms.has(guild.channel_permissions_of(self.bot.id, channel), perms.MANAGE_ROLES):
            raise errors.missing_permissions()
        held = guild.permissions_of(self.bot.id)
        existing = {(o.id, o.type, o.allow, o.deny) for o in channel.permission_overwrites}
        overwrites = []
        for index, item in enumerate(given):
            targets = guild.roles if item.type == 0 else guild.members
            if item.id not in targets:
                kind = "role" if item.type == 0 else "member"
                raise errors.field_error(
                    (field, index, "id"), "UNKNOWN_OVERWRITE", f"{item.id} is not a {kind} of this guild."
                )
            overwrite = Overwrite(id=item.id, type=item.type, allow=item.allow or 0, deny=item.deny or 0)
            changed = (overwrite.id, overwrite.type, overwrite.allow, overwrite.deny) not in existing
            if (
                changed
                and not perms.has(held, perms.ADMINISTRATOR)
                and (overwrite.allow | overwrite.deny) & ~held
            ):
                raise errors.missing_permissions()
            overwrites.append(overwrite)
        return overwrites

    # -- members --------------------------------------------------------------------------------

    def update_member(self, guild_id: int, user_id: int, body: MemberFields) -> tuple[GuildState, Member]:
        guild = self.guild(guild_id)
        member = self.member(guild, user_id)
        changed = False
        if body.roles is not None:
            self._require(guild, perms.MANAGE_ROLES)
            new_roles = list(dict.fromkeys(body.roles))
            for index, role_id in enumerate(new_roles):
                if role_id not in guild.roles or role_id == guild.id:
                    raise errors.field_error(("roles", index), "UNKNOWN_ROLE", f"Unknown role {role_id}.")
            for role_id in set(new_roles) ^ set(member.roles):
                role = guild.roles.get(role_id)
                if role is None:
                    continue  # a deleted role lingering on the member: dropping it needs no right
                self._require_below_bot(guild, role)
                if role.managed:
                    raise errors.missing_permissions()
            if new_roles != member.roles:
                member.roles = new_roles
                changed = True
        if body.given("nick"):
            self._require(guild, perms.MANAGE_NICKNAMES)
            if body.nick != member.nick:
                member.nick = body.nick or None
                changed = True
        if changed:
            event = self.member_json(guild, member)
            event["guild_id"] = str(guild.id)
            self.dispatch(Dispatch("GUILD_MEMBER_UPDATE", event, guild.id, GUILD_MEMBERS, user_id=user_id))
        return guild, member

    def _dispatch_member_event(self, guild: GuildState, name: str, data: dict[str, Any]) -> None:
        # Sessions only hear about guilds the bot is in.
        if self.bot.id in guild.members:
            self.dispatch(Dispatch(name, {**data, "guild_id": str(guild.id)}, guild.id, GUILD_MEMBERS))

    def put_member(self, guild_id: int, user_id: int, roles: list[int] | None) -> tuple[Member, bool]:
        """A user joins a guild, or an existing member's roles are set (the control API, acting as
        the guild's owner: no permission checks). Returns the member and whether it is new."""
        guild = self.guilds.get(guild_id)
        if guild is None:
            raise errors.unknown("guild")
        user = self.users.get(user_id)
        if user is None:
            raise errors.unknown("user")
        if user_id == self.bot.id:
            raise ValueError(
                "The bot's memberships come from the fixture; change its roles with "
                "PATCH /api/v10/guilds/{guild_id}/members/{user_id}."
            )
        wanted = None if roles is None else list(dict.fromkeys(roles))
        for role_id in wanted or []:
            role = guild.roles.get(role_id)
            if role is None or role.id == guild.id:
                raise ValueError(f"Guild {guild.id} has no role {role_id} to give (@everyone is implied).")
            if role.managed:
                raise ValueError(
                    f"Role {role.name!r} is managed by an integration; nobody can give it by hand."
                )
        member = guild.members.get(user_id)
        if member is None:
            member = Member(user_id=user_id, roles=wanted or [], joined_at=datetime.now(UTC))
            guild.members[user_id] = member
            self._dispatch_member_event(guild, "GUILD_MEMBER_ADD", self.member_json(guild, member))
            return member, True
        if wanted is not None and wanted != member.roles:
            member.roles = wanted
            event = self.member_json(guild, member)
            self._dispatch_member_event(guild, "GUILD_MEMBER_UPDATE", event)
        return member, False

    def remove_member(self, guild_id: int, user_id: int) -> None:
        """A user leaves a guild (the control API); overwrites for them go too, as a fixture
        cannot name a member overwrite for someone who is not a member."""
        guild = self.guilds.get(guild_id)
        if guild is None:
            raise errors.unknown("guild")
        member = self.member(guild, user_id)
        if user_id == self.bot.id:
            raise ValueError(
                "The bot leaves a guild through DELETE /api/v10/users/@me/guilds/{guild_id}, "
                "not through the control API."
            )
        if user_id == guild.guild.owner_id:
            raise ValueError(f"User {user_id} owns guild {guild.id}, and an owner cannot leave their guild.")
        del guild.members[member.user_id]
        for channel in guild.channels.values():
            kept = [o for o in channel.permission_overwrites if not (o.type == 1 and o.id == user_id)]
            if len(kept) != len(channel.permission_overwrites):
                channel.permission_overwrites = kept
                if self.bot.id in guild.members:
                    data = shapes.channel_json(channel, guild.id)
                    self.dispatch(Dispatch("CHANNEL_UPDATE", data, guild.id, GUILDS))
        self._dispatch_member_event(
            guild, "GUILD_MEMBER_REMOVE", {"user": shapes.user_json(self.users[user_id])}
        )


__all__ = ["Dispatch", "GuildState", "RoleTags", "SandboxState"]
