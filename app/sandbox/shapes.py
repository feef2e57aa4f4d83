"""Discord's JSON shapes for the sandbox's objects, as the v10 API sends them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.sandbox.fixture import Application, BotUser, Channel, Guild, Member, Message, Role, User

JSON = dict[str, Any]


def timestamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def user_json(user: User) -> JSON:
    data: JSON = {
        "id": str(user.id),
        "username": user.username,
        "global_name": user.global_name,
        "discriminator": user.discriminator,
        "avatar": user.avatar,
        "public_flags": 0,
        "flags": 0,
        "banner": None,
        "accent_color": None,
        "avatar_decoration_data": None,
        "collectibles": None,
        "primary_guild": None,
    }
    if user.bot:
        data["bot"] = True
    return data


def user_email(user: User) -> str | None:
    """A user's address for the ``email`` scope: made up, on a domain that can never exist."""
    return None if user.bot else f"{user.username}@sandbox.invalid"


def current_user_json(user: User, *, with_email: bool = True) -> JSON:
    """``GET /users/@me``: for the bot, or for a Bearer token's user; ``verified`` and ``email``
    come only with the ``email`` scope, as on Discord."""
    data = user_json(user)
    data.update({"mfa_enabled": False, "locale": "en-US", "premium_type": 0})
    if with_email:
        data.update({"verified": True, "email": user_email(user)})
    return data


def application_json(application: Application, bot: BotUser, owner: User) -> JSON:
    return {
        "id": str(application.id),
        "name": application.name,
        "icon": None,
        "description": application.description,
        "type": None,
        "bot": user_json(bot),
        "bot_public": True,
        "bot_require_code_grant": False,
        "verify_key": "0" * 64,
        "flags": 0,
        "flags_new": "0",
        "redirect_uris": list(application.redirect_uris),
        "interactions_endpoint_url": None,
        "role_connections_verification_url": None,
        "owner": user_json(owner),
        "approximate_guild_count": 0,
        "approximate_user_install_count": 0,
        "approximate_user_authorization_count": 0,
        "explicit_content_filter": 0,
        "team": None,
        "eligible_oauth2_scopes": ["bot", "applications.commands"],
        "summary": "",
        "hook": True,
        "rpc_origins": [],
        "tags": [],
    }


def role_json(role: Role) -> JSON:
    data: JSON = {
        "id": str(role.id),
        "name": role.name,
        "color": role.color,
        "colors": {
            "primary_color": role.color,
            "secondary_color": role.secondary_color,
            "tertiary_color": role.tertiary_color,
        },
        "hoist": role.hoist,
        "icon": role.icon,
        "unicode_emoji": role.unicode_emoji,
        "position": role.position,
        "permissions": str(role.permissions),
        "managed": role.managed,
        "mentionable": role.mentionable,
        "flags": role.flags,
    }
    if role.tags is not None:
        tags: JSON = {}
        for name in ("bot_id", "integration_id", "subscription_listing_id"):
            value = getattr(role.tags, name)
            if value is not None:
                tags[name] = str(value)
        # Discord marks these boolean tags by the key's presence with a null value.
        for name in ("premium_subscriber", "available_for_purchase", "guild_connections"):
            if getattr(role.tags, name):
                tags[name] = None
        data["tags"] = tags
    return data


def overwrites_json(channel: Channel) -> list[JSON]:
    return [
        {"id": str(o.id), "type": o.type, "allow": str(o.allow), "deny": str(o.deny)}
        for o in channel.permission_overwrites
    ]


def channel_json(channel: Channel, guild_id: int) -> JSON:
    data: JSON = {
        "id": str(channel.id),
        "type": channel.type,
        "guild_id": str(guild_id),
        "name": channel.name,
        "position": channel.position,
        "flags": 0,
        "parent_id": None if channel.parent_id is None else str(channel.parent_id),
        "permission_overwrites": overwrites_json(channel),
    }
    if channel.type in (0, 5, 15):
        data.update(
            {
                "topic": channel.topic,
                "nsfw": channel.nsfw,
                "last_message_id": None,
                "rate_limit_per_user": 0,
            }
        )
    if channel.type in (2, 13):
        data.update({"bitrate": 64000, "user_limit": 0, "rtc_region": None, "nsfw": channel.nsfw})
    return data


def member_json(member: Member, user: User | None, *, with_user: bool = True) -> JSON:
    data: JSON = {
        "nick": member.nick,
        "avatar": None,
        "banner": None,
        "roles": [str(role) for role in member.roles],
        "joined_at": timestamp(member.joined_at),
        "premium_since": timestamp(member.premium_since),
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "communication_disabled_until": None,
    }
    if with_user and user is not None:
        data["user"] = user_json(user)
    return data


def guild_json(guild: Guild, roles: list[Role], application_id: int | None = None) -> JSON:
    """The guild object of ``GET /guilds/{guild_id}`` (without members and channels)."""
    return {
        "id": str(guild.id),
        "name": guild.name,
        "icon": guild.icon,
        "description": guild.description,
        "home_header": None,
        "splash": None,
        "discovery_splash": None,
        "features": [],
        "banner": None,
        "owner_id": str(guild.owner_id),
        "application_id": None if application_id is None else str(application_id),
        "region": "deprecated",
        "afk_channel_id": None,
        "afk_timeout": 300,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "widget_enabled": False,
        "widget_channel_id": None,
        "verification_level": 0,
        "roles": [role_json(role) for role in roles],
        "default_message_notifications": 1,
        "mfa_level": 0,
        "explicit_content_filter": 0,
        "max_presences": None,
        "max_members": 500000,
        "max_stage_video_channel_users": 50,
        "max_video_channel_users": 25,
        "vanity_url_code": None,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "rules_channel_id": None,
        "safety_alerts_channel_id": None,
        "public_updates_channel_id": None,
        "premium_progress_bar_enabled": False,
        "nsfw": False,
        "nsfw_level": 0,
        "emojis": [],
        "stickers": [],
        "incidents_data": None,
    }


def partial_guild_json(
    guild: Guild, *, owner: bool, permissions: int, counts: tuple[int, int] | None = None
) -> JSON:
    """One guild of ``GET /users/@me/guilds``; ``counts`` are (members, presences) for ``with_counts``."""
    data: JSON = {
        "id": str(guild.id),
        "name": guild.name,
        "icon": guild.icon,
        "banner": None,
        "owner": owner,
        "permissions": str(permissions),
        "features": [],
    }
    if counts is not None:
        data["approximate_member_count"], data["approximate_presence_count"] = counts
    return data


def message_json(
    message: Message, channel_id: int, author: User, mentioned: list[User], nonce: str | int | None = None
) -> JSON:
    """A message; ``nonce`` only in the answer to its create and in its MESSAGE_CREATE, as on Discord."""
    data: JSON = {
        "id": str(message.id),
        "channel_id": str(channel_id),
        "type": 0,
        "author": user_json(author),
        "content": message.content,
        "timestamp": timestamp(message.timestamp),
        "edited_timestamp": timestamp(message.edited_timestamp),
        "tts": False,
        "mention_everyone": message.mention_everyone,
        "mentions": [user_json(user) for user in mentioned],
        "mention_roles": [str(role) for role in message.mention_roles],
        "attachments": [],
        "embeds": message.embeds,
        "pinned": False,
        "flags": message.flags,
        "components": message.components,
    }
    if nonce is not None:
        data["nonce"] = nonce
    if message.webhook_id is not None:
        data["webhook_id"] = str(message.webhook_id)
    if message.application_id is not None:
        data["application_id"] = str(message.application_id)
    if message.interaction_metadata is not None:
        data["interaction_metadata"] = message.interaction_metadata
    return data
