"""Which mentions in a message's content really mention (and ping), as Discord decides.

A role mention ``<@&id>`` becomes one of the message's ``mention_roles`` when the role exists
in the guild, ``allowed_mentions`` lets it through (absent ``allowed_mentions`` lets every kind
through), and the author may ping it: the role is mentionable or the author has
MENTION_EVERYONE in the channel. ``@everyone`` and ``@here`` need "everyone" allowed and
MENTION_EVERYONE.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass

from app.discord import permissions as perms
from app.sandbox.bodies import AllowedMentions
from app.sandbox.fixture import Role

ROLE_MENTION = re.compile(r"<@&(\d{1,20})>")
USER_MENTION = re.compile(r"<@!?(\d{1,20})>")
EVERYONE_MENTION = re.compile(r"@(?:everyone|here)\b")


@dataclass(frozen=True)
class Mentions:
    role_ids: list[int]
    user_ids: list[int]
    everyone: bool


def _unique(values: list[int]) -> list[int]:
    return list(dict.fromkeys(values))


def resolve_mentions(
    content: str,
    allowed: AllowedMentions | None,
    *,
    roles: dict[int, Role],
    member_ids: Container[int],
    guild_id: int,
    author_channel_permissions: int,
) -> Mentions:
    can_mention_everyone = perms.has(author_channel_permissions, perms.MENTION_EVERYONE)
    if allowed is None:
        parse: set[str] = {"roles", "users", "everyone"}
        allowed_roles: set[int] = set()
        allowed_users: set[int] = set()
    else:
        parse = set(allowed.parse or [])
        allowed_roles = set(allowed.roles or [])
        allowed_users = set(allowed.users or [])

    role_ids = []
    for match in ROLE_MENTION.finditer(content):
        role_id = int(match.group(1))
        role = roles.get(role_id)
        if role is None or role_id == guild_id:
            continue
        if "roles" not in parse and role_id not in allowed_roles:
            continue
        if role.mentionable or can_mention_everyone:
            role_ids.append(role_id)

    user_ids = []
    for match in USER_MENTION.finditer(content):
        user_id = int(match.group(1))
        if user_id in member_ids and ("users" in parse or user_id in allowed_users):
            user_ids.append(user_id)

    everyone = bool(EVERYONE_MENTION.search(content)) and "everyone" in parse and can_mention_everyone
    return Mentions(role_ids=_unique(role_ids), user_ids=_unique(user_ids), everyone=everyone)
