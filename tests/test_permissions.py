"""Discord's permission algorithm, on edge cases a fixture does not reach."""

from __future__ import annotations

from app.discord import permissions as perms
from app.discord.permissions import Overwrite

GUILD, OWNER, MEMBER, ROLE_A, ROLE_B = 100, 1, 2, 10, 11
EVERYONE_BITS = perms.VIEW_CHANNEL | perms.SEND_MESSAGES


def base(member: int = MEMBER, roles: tuple[int, ...] = (ROLE_A,), extra: int = 0) -> int:
    return perms.base_permissions(
        guild_id=GUILD,
        owner_id=OWNER,
        member_id=member,
        member_role_ids=roles,
        role_permissions={GUILD: EVERYONE_BITS, ROLE_A: extra, ROLE_B: perms.MENTION_EVERYONE},
    )


def in_channel(base_bits: int, overwrites: list[Overwrite], roles: tuple[int, ...] = (ROLE_A,)) -> int:
    return perms.channel_permissions(
        base_bits, guild_id=GUILD, member_id=MEMBER, member_role_ids=roles, overwrites=overwrites
    )


def test_owner_and_administrator_have_everything() -> None:
    assert base(member=OWNER, roles=()) == perms.ALL
    assert base(extra=perms.ADMINISTRATOR) == perms.ALL
    assert in_channel(perms.ALL, [Overwrite(GUILD, 0, 0, perms.VIEW_CHANNEL)]) == perms.ALL


def test_roles_add_up_and_deleted_roles_grant_nothing() -> None:
    assert base(roles=(ROLE_A, ROLE_B)) == EVERYONE_BITS | perms.MENTION_EVERYONE
    assert base(roles=(999,)) == EVERYONE_BITS


def test_overwrites_apply_everyone_then_roles_then_member() -> None:
    bits = base(roles=(ROLE_A, ROLE_B))
    everyone_deny = Overwrite(GUILD, 0, 0, perms.MENTION_EVERYONE)
    role_allow = Overwrite(ROLE_A, 0, perms.MENTION_EVERYONE, 0)
    member_deny = Overwrite(MEMBER, 1, 0, perms.MENTION_EVERYONE)
    assert not in_channel(bits, [everyone_deny], roles=(ROLE_A, ROLE_B)) & perms.MENTION_EVERYONE
    assert in_channel(bits, [everyone_deny, role_allow], roles=(ROLE_A, ROLE_B)) & perms.MENTION_EVERYONE
    assert not in_channel(bits, [everyone_deny, role_allow, member_deny], roles=(ROLE_A, ROLE_B)) & (
        perms.MENTION_EVERYONE
    )
    # A member overwrite for someone else changes nothing; a role allow beats a role deny.
    other_member = Overwrite(OWNER, 1, 0, perms.MENTION_EVERYONE)
    role_deny = Overwrite(ROLE_B, 0, 0, perms.MENTION_EVERYONE)
    assert (
        in_channel(bits, [other_member, role_deny, role_allow], roles=(ROLE_A, ROLE_B))
        & perms.MENTION_EVERYONE
    )


def test_implicit_denials() -> None:
    bits = base(roles=(ROLE_B,))
    assert in_channel(bits, [Overwrite(GUILD, 0, 0, perms.VIEW_CHANNEL)], roles=(ROLE_B,)) == 0
    no_send = in_channel(bits, [Overwrite(GUILD, 0, 0, perms.SEND_MESSAGES)], roles=(ROLE_B,))
    assert no_send & perms.VIEW_CHANNEL and not no_send & perms.MENTION_EVERYONE
