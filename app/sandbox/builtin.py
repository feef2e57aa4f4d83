"""Fixtures that ship with the sandbox: the default world, and generated worlds for benchmarks."""

from __future__ import annotations

import random
from collections.abc import Iterator

from discord import Permissions

from app.sandbox.fixture import (
    DEFAULT_CLIENT_SECRET,
    Application,
    BotUser,
    Channel,
    Fixture,
    Guild,
    Member,
    Overwrite,
    Role,
    RoleTags,
    User,
)
from app.sandbox.snowflake import snowflake_at

# Fixture ids carry timestamps from 2024 onwards, one millisecond apart, so guilds spread
# over shards the way real ones do (a guild's shard is (id >> 22) % shards).
_FIXTURE_EPOCH_MS = 1_704_067_200_000

BOT_TOKEN = "sandbox-bot-token"
# The default application's OAuth2 client secret (client_id is the bot's id, as on Discord).
CLIENT_SECRET = DEFAULT_CLIENT_SECRET

EVERYONE = Permissions(
    view_channel=True,
    send_messages=True,
    read_message_history=True,
    add_reactions=True,
    embed_links=True,
    attach_files=True,
    use_external_emojis=True,
    create_instant_invite=True,
    change_nickname=True,
    connect=True,
    speak=True,
).value


def _ids(start: int) -> Iterator[int]:
    serial = start
    while True:
        yield snowflake_at(_FIXTURE_EPOCH_MS + serial)
        serial += 1


def _bits(**flags: bool) -> int:
    return Permissions(**flags).value


def default_fixture() -> Fixture:
    """Five guilds that cover what the product must get right.

    - Polly Playground: the bot can MENTION_EVERYONE and MANAGE_ROLES; mentionable,
      non-mentionable and managed roles (bot, integration and booster tags); #announcements
      denies the bot MENTION_EVERYONE by a member overwrite; #staff hides itself from the bot.
    - Quiet Corner: the bot has neither MENTION_EVERYONE nor MANAGE_ROLES.
    - Polly HQ: the bot is administrator.
    - Big Guild: 250 roles, Discord's maximum.
    - Elsewhere: a guild the bot is not in.
    """
    ids = _ids(0)
    bot = BotUser(id=next(ids), username="Polly Sandbox", discriminator="0420", token=BOT_TOKEN)
    application = Application(
        id=bot.id,
        name="Polly Sandbox",
        description="A local Discord application.",
        client_secret=CLIENT_SECRET,
    )
    alice, bob, carol, dave, erin = (
        User(id=next(ids), username=name, global_name=name.capitalize())
        for name in ("alice", "bob", "carol", "dave", "erin")
    )
    users = [alice, bob, carol, dave, erin]

    # Polly Playground ---------------------------------------------------------------------
    playground_id = next(ids)
    admins, polly, moderators, events, voters, quiet, twitch, booster = (next(ids) for _ in range(8))
    playground = Guild(
        id=playground_id,
        name="Polly Playground",
        owner_id=alice.id,
        roles=[
            Role(id=playground_id, name="@everyone", permissions=EVERYONE),
            Role(
                id=admins,
                name="Admins",
                position=8,
                color=0xE74C3C,
                hoist=True,
                permissions=_bits(administrator=True),
            ),
            Role(
                id=polly,
                name="Polly",
                position=7,
                managed=True,
                tags=RoleTags(bot_id=bot.id),
                permissions=_bits(
                    manage_roles=True, manage_channels=True, mention_everyone=True, send_messages=True
                ),
            ),
            Role(
                id=moderators,
                name="Moderators",
                position=6,
                color=0x3498DB,
                hoist=True,
                mentionable=True,
                permissions=_bits(manage_messages=True, kick_members=True),
            ),
            Role(
                id=events,
                name="Event Pings",
                position=5,
                color=0xF1C40F,
                mentionable=True,
                unicode_emoji="🎉",
            ),
            Role(id=voters, name="Poll Voters", position=4, color=0x2ECC71, mentionable=True),
            Role(id=quiet, name="Quiet Folk", position=3, color=0x95A5A6),
            Role(
                id=twitch,
                name="Twitch Subscriber",
                position=2,
                managed=True,
                color=0x9146FF,
                tags=RoleTags(integration_id=next(ids)),
            ),
            Role(
                id=booster,
                name="Server Booster",
                position=1,
                managed=True,
                color=0xF47FFF,
                tags=RoleTags(premium_subscriber=True),
            ),
        ],
        members=[
            Member(user_id=alice.id, roles=[admins]),
            Member(user_id=bob.id, roles=[moderators, voters]),
            Member(user_id=carol.id, roles=[events, booster]),
            Member(user_id=dave.id, roles=[quiet]),
            Member(user_id=bot.id, roles=[polly]),
        ],
    )
    category = next(ids)
    playground.channels = [
        Channel(id=category, name="Text Channels", type=4),
        Channel(id=next(ids), name="general", parent_id=category, position=0, topic="Say hello."),
        Channel(id=next(ids), name="polls", parent_id=category, position=1, topic="Polls live here."),
        Channel(
            id=next(ids),
            name="announcements",
            parent_id=category,
            position=2,
            permission_overwrites=[
                Overwrite(id=bot.id, type=1, deny=_bits(mention_everyone=True)),
            ],
        ),
        Channel(
            id=next(ids),
            name="staff",
            parent_id=category,
            position=3,
            permission_overwrites=[
                Overwrite(id=playground_id, type=0, deny=_bits(view_channel=True)),
                Overwrite(id=moderators, type=0, allow=_bits(view_channel=True)),
            ],
        ),
    ]

    # Quiet Corner -------------------------------------------------------------------------
    quiet_id = next(ids)
    quiet_bot, helpers, readers, artists = (next(ids) for _ in range(4))
    quiet_corner = Guild(
        id=quiet_id,
        name="Quiet Corner",
        owner_id=bob.id,
        roles=[
            Role(id=quiet_id, name="@everyone", permissions=EVERYONE),
            Role(
                id=quiet_bot,
                name="Polly",
                position=4,
                managed=True,
                tags=RoleTags(bot_id=bot.id),
                permissions=_bits(send_messages=True, view_channel=True),
            ),
            Role(id=helpers, name="Helpers", position=3, color=0x1ABC9C, mentionable=True),
            Role(id=readers, name="Readers", position=2, color=0x7F8C8D),
            Role(id=artists, name="Artists", position=1, color=0xE67E22, mentionable=True),
        ],
        channels=[
            Channel(id=next(ids), name="general"),
            Channel(id=next(ids), name="art", position=1),
        ],
        members=[
            Member(user_id=bob.id, roles=[helpers]),
            Member(user_id=alice.id, roles=[readers]),
            Member(user_id=erin.id, roles=[artists]),
            Member(user_id=bot.id, roles=[quiet_bot]),
        ],
    )

    # Polly HQ: the bot is administrator ------------------------------------------------------
    hq_id = next(ids)
    hq_bot, staff, retired, patreon = (next(ids) for _ in range(4))
    hq = Guild(
        id=hq_id,
        name="Polly HQ",
        owner_id=carol.id,
        roles=[
            Role(id=hq_id, name="@everyone", permissions=EVERYONE),
            Role(
                id=hq_bot,
                name="Polly Admin",
                position=4,
                managed=True,
                tags=RoleTags(bot_id=bot.id),
                permissions=_bits(administrator=True),
            ),
            Role(id=staff, name="Staff", position=3, color=0x9B59B6, mentionable=True, hoist=True),
            Role(id=retired, name="Retired", position=2),
            Role(
                id=patreon, name="Patreon", position=1, managed=True, tags=RoleTags(integration_id=next(ids))
            ),
        ],
        channels=[
            Channel(id=next(ids), name="general"),
            Channel(
                id=next(ids),
                name="locked",
                position=1,
                permission_overwrites=[Overwrite(id=hq_id, type=0, deny=_bits(view_channel=True))],
            ),
        ],
        members=[
            Member(user_id=carol.id, roles=[staff]),
            Member(user_id=dave.id, roles=[retired]),
            Member(user_id=bot.id, roles=[hq_bot]),
        ],
    )

    # Big Guild: 250 roles -------------------------------------------------------------------
    big_id = next(ids)
    big_bot = next(ids)
    big_roles = [
        Role(id=big_id, name="@everyone", permissions=EVERYONE),
        Role(
            id=big_bot,
            name="Polly",
            position=249,
            managed=True,
            tags=RoleTags(bot_id=bot.id),
            permissions=_bits(manage_roles=True, send_messages=True, view_channel=True),
        ),
    ]
    for number in range(1, 249):
        big_roles.append(
            Role(
                id=next(ids),
                name=f"Role {number:03d}",
                position=249 - number,
                color=(number * 0x10101) % 0xFFFFFF,
                mentionable=number % 2 == 0,
                hoist=number % 25 == 0,
            )
        )
    big = Guild(
        id=big_id,
        name="Big Guild",
        owner_id=dave.id,
        roles=big_roles,
        channels=[Channel(id=next(ids), name="general"), Channel(id=next(ids), name="poll-room", position=1)],
        members=[
            Member(user_id=dave.id, roles=[big_roles[2].id]),
            Member(user_id=erin.id, roles=[big_roles[3].id, big_roles[4].id]),
            Member(user_id=bot.id, roles=[big_bot]),
        ],
    )

    # Elsewhere: the bot is not a member ------------------------------------------------------
    elsewhere_id = next(ids)
    elsewhere = Guild(
        id=elsewhere_id,
        name="Elsewhere",
        owner_id=erin.id,
        roles=[Role(id=elsewhere_id, name="@everyone", permissions=EVERYONE)],
        channels=[Channel(id=next(ids), name="general")],
        members=[Member(user_id=erin.id)],
    )

    return Fixture(
        bot=bot,
        application=application,
        users=users,
        guilds=[playground, quiet_corner, hq, big, elsewhere],
    )


def generated_fixture(guild_count: int, *, seed: int = 1, shards: int = 1) -> Fixture:
    """``guild_count`` guilds of varied sizes (2 to 120 roles), all with the bot, for benchmarks."""
    if guild_count < 1:
        raise ValueError("A generated fixture needs at least one guild.")
    rng = random.Random(seed)
    ids = _ids(1_000_000)
    bot = BotUser(id=next(ids), username="Polly Sandbox", discriminator="0420", token=BOT_TOKEN)
    users = [User(id=next(ids), username=f"user{number:03d}") for number in range(50)]
    guilds = []
    for number in range(guild_count):
        guild_id = next(ids)
        role_count = min(249, max(2, int(rng.paretovariate(1.2) * 4)))
        bot_role = next(ids)
        can_mention_everyone = rng.random() < 0.3
        roles = [
            Role(id=guild_id, name="@everyone", permissions=EVERYONE),
            Role(
                id=bot_role,
                name="Polly",
                position=role_count,
                managed=True,
                tags=RoleTags(bot_id=bot.id),
                permissions=_bits(
                    manage_roles=True,
                    mention_everyone=can_mention_everyone,
                    send_messages=True,
                    view_channel=True,
                ),
            ),
        ]
        for index in range(1, role_count):
            roles.append(
                Role(
                    id=next(ids),
                    name=f"Role {index}",
                    position=role_count - index,
                    color=rng.randrange(0xFFFFFF),
                    mentionable=rng.random() < 0.6,
                )
            )
        owner = rng.choice(users)
        members = [Member(user_id=bot.id, roles=[bot_role]), Member(user_id=owner.id)]
        for user in rng.sample(users, 5):
            if user is not owner:
                members.append(
                    Member(user_id=user.id, roles=[rng.choice(roles[2:]).id] if len(roles) > 2 else [])
                )
        channels = [Channel(id=next(ids), name="general"), Channel(id=next(ids), name="polls", position=1)]
        guilds.append(
            Guild(
                id=guild_id,
                name=f"Guild {number:04d}",
                owner_id=owner.id,
                roles=roles,
                channels=channels,
                members=members,
            )
        )
    return Fixture(
        bot=bot,
        application=Application(id=bot.id, name="Polly Sandbox", client_secret=CLIENT_SECRET),
        users=users,
        guilds=guilds,
        shards=shards,
    )
