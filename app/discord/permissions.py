"""Discord's permission algorithm over raw API data.

This follows the algorithm in Discord's documentation ("Permission Overwrites" in the
Permissions topic): base permissions from @everyone and the member's roles, ownership and
ADMINISTRATOR short-circuits, then channel overwrites in the order @everyone, roles, member.
Flag values come from discord.py's ``Permissions`` so they never drift from the library.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import discord

ALL = discord.Permissions.all().value
ADMINISTRATOR = discord.Permissions(administrator=True).value
VIEW_CHANNEL = discord.Permissions(view_channel=True).value
SEND_MESSAGES = discord.Permissions(send_messages=True).value
MENTION_EVERYONE = discord.Permissions(mention_everyone=True).value
MANAGE_ROLES = discord.Permissions(manage_roles=True).value
MANAGE_CHANNELS = discord.Permissions(manage_channels=True).value
MANAGE_NICKNAMES = discord.Permissions(manage_nicknames=True).value
EMBED_LINKS = discord.Permissions(embed_links=True).value

# Without SEND_MESSAGES in a channel, Discord treats these as denied there too.
_NEEDS_SEND_MESSAGES = discord.Permissions(
    mention_everyone=True,
    send_tts_messages=True,
    attach_files=True,
    embed_links=True,
).value

ROLE_OVERWRITE = 0
MEMBER_OVERWRITE = 1


@dataclass(frozen=True, slots=True)
class Overwrite:
    id: int
    type: int
    allow: int
    deny: int


def has(permissions: int, flag: int) -> bool:
    """Whether ``permissions`` grant ``flag``; ADMINISTRATOR grants everything."""
    return permissions & ADMINISTRATOR == ADMINISTRATOR or permissions & flag == flag


def base_permissions(
    *,
    guild_id: int,
    owner_id: int,
    member_id: int,
    member_role_ids: Iterable[int],
    role_permissions: Mapping[int, int],
) -> int:
    """A member's guild-wide permissions.

    ``role_permissions`` maps every role id of the guild (``guild_id`` is @everyone) to its
    permission bits; member roles missing from it (deleted roles) grant nothing.
    """
    if member_id == owner_id:
        return ALL
    permissions = role_permissions.get(guild_id, 0)
    for role_id in member_role_ids:
        permissions |= role_permissions.get(role_id, 0)
    if permissions & ADMINISTRATOR == ADMINISTRATOR:
        return ALL
    return permissions


def channel_permissions(
    base: int,
    *,
    guild_id: int,
    member_id: int,
    member_role_ids: Iterable[int],
    overwrites: Iterable[Overwrite],
) -> int:
    """A member's permissions in one channel, from its guild-wide ``base`` permissions."""
    if base & ADMINISTRATOR == ADMINISTRATOR:
        return ALL
    role_overwrites: dict[int, Overwrite] = {}
    member_overwrite: Overwrite | None = None
    for overwrite in overwrites:
        if overwrite.type == MEMBER_OVERWRITE:
            if overwrite.id == member_id:
                member_overwrite = overwrite
        else:
            role_overwrites[overwrite.id] = overwrite

    permissions = base
    everyone = role_overwrites.get(guild_id)
    if everyone is not None:
        permissions = (permissions & ~everyone.deny) | everyone.allow

    allow = deny = 0
    for role_id in member_role_ids:
        role_overwrite = role_overwrites.get(role_id)
        if role_overwrite is not None:
            allow |= role_overwrite.allow
            deny |= role_overwrite.deny
    permissions = (permissions & ~deny) | allow

    if member_overwrite is not None:
        permissions = (permissions & ~member_overwrite.deny) | member_overwrite.allow

    # Implicit permissions: a channel you cannot see grants nothing, and a channel you
    # cannot write to grants none of the permissions that only apply to writing.
    if not permissions & VIEW_CHANNEL:
        return 0
    if not permissions & SEND_MESSAGES:
        permissions &= ~_NEEDS_SEND_MESSAGES
    return permissions
