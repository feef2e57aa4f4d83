"""What makes a poll valid: each failure is a PollInputError naming the field, in the words a
user can act on. Pure functions of the input, the clock and the guild's cached role data."""

from __future__ import annotations

import re
import unicodedata
import zoneinfo
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from app.discord import permissions as perms
from app.polls.errors import PollInputError
from app.polls.record import OptionRecord, Visibility
from app.roles.errors import ChannelNotFound
from app.roles.pingability import Reason, bot_abilities, channel_permissions, validate_role
from app.roles.snapshot import GuildSnapshot

MAX_NAME = 200
MAX_QUESTION = 2000
MIN_OPTIONS, MAX_OPTIONS = 2, 10
MAX_OPTION_TEXT = 80  # a button label's limit
# Channels a poll's message can be posted in: text and announcement channels.
POSTABLE_CHANNEL_TYPES = frozenset({0, 5})
# Unicode categories an emoji is made of: symbols, modifiers (skin tones), marks (variation
# selectors, keycaps) and format characters (zero-width joiners).
EMOJI_PARTS = frozenset({"So", "Sk", "Mn", "Me", "Cf"})
# A custom emoji as Discord writes it: <:name:id>, or <a:name:id> animated.
CUSTOM_EMOJI = re.compile(r"<a?:\w{2,32}:\d{1,20}>")
MIN_DURATION = timedelta(minutes=1)
MAX_DURATION = timedelta(days=30)
MAX_ALLOWED_ROLES = 25
# How far ahead a poll may be scheduled: a year is past any real use, and keeps typos
# (a year 2062) from sitting in the database.
MAX_LEAD = timedelta(days=366)

_WHY_NOT_PINGABLE = {
    Reason.NOT_FOUND: "is not a role of this guild",
    Reason.EVERYONE: "is @everyone, which a poll never pings",
    Reason.MANAGED: "is managed by an integration, and only an administrator bot may ping it",
    Reason.NOT_MENTIONABLE: "is not mentionable, and the bot lacks Mention Everyone in that channel",
    Reason.CHANNEL_NOT_VISIBLE: "cannot be pinged: the bot cannot see the channel",
    Reason.CANNOT_SEND_MESSAGES: "cannot be pinged: the bot cannot send messages in the channel",
}


def why_not_pingable(reason: Reason | None) -> str:
    """Why a role cannot be pinged, to follow "Role N": a sentence a user can act on."""
    return _WHY_NOT_PINGABLE.get(reason, "cannot be pinged") if reason is not None else "cannot be pinged"


@dataclass(frozen=True)
class PollDraft:
    """Every field of a poll a client chooses, after defaults."""

    channel_id: int
    name: str
    question: str
    options: tuple[OptionRecord, ...]
    opens_at: datetime
    closes_at: datetime
    timezone: str
    anonymous: bool
    max_choices: int
    results_visibility: Visibility
    ping_role_id: int | None
    ping_on_open: bool
    ping_on_close: bool
    allowed_role_ids: tuple[int, ...]


def aware(value: datetime, field: str) -> datetime:
    """A date-time with its offset; a naive one is refused (the origin project's "4:00 became
    12:00" came from guessing)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise PollInputError(
            field,
            f"{field} must carry a UTC offset, like 2026-12-24T16:00:00+01:00 or 2026-12-24T15:00:00Z;"
            " a time without one is ambiguous.",
        )
    return value


def text(value: str, field: str, maximum: int) -> str:
    cleaned = value.strip()
    if not cleaned:
        raise PollInputError(field, f"{field} must not be empty.")
    if len(cleaned) > maximum:
        raise PollInputError(field, f"{field} may hold at most {maximum} characters; it has {len(cleaned)}.")
    return cleaned


def options(given: list[tuple[str, str | None]]) -> tuple[OptionRecord, ...]:
    if not MIN_OPTIONS <= len(given) <= MAX_OPTIONS:
        raise PollInputError(
            "options", f"A poll needs {MIN_OPTIONS} to {MAX_OPTIONS} options; {len(given)} were given."
        )
    seen: dict[str, int] = {}
    result = []
    for position, (label, emoji) in enumerate(given):
        field = f"options[{position}].text"
        cleaned = text(label, field, MAX_OPTION_TEXT)
        folded = cleaned.casefold()
        if folded in seen:
            raise PollInputError(
                field,
                f"Option {position + 1} ({cleaned!r}) repeats option {seen[folded] + 1}; options must differ"
                " (ignoring case).",
            )
        seen[folded] = position
        if emoji is not None:
            emoji = emoji.strip() or None
            if emoji is not None and not is_emoji(emoji):
                field = f"options[{position}].emoji"
                raise PollInputError(
                    field,
                    f"{field} must be one emoji, like 🍕, or a custom one written <:name:id>;"
                    f" got {emoji[:40]!r}.",
                )
        result.append(OptionRecord(position, cleaned, emoji))
    return tuple(result)


def is_emoji(value: str) -> bool:
    """One Unicode emoji (a short run of symbols, with skin tones, variation selectors, joiners
    and keycaps; no letters or spaces) or a custom one: what Discord takes as a button's emoji."""
    if CUSTOM_EMOJI.fullmatch(value):
        return True
    if not 0 < len(value) <= 16 or any(c.isascii() and c.isalpha() for c in value):
        return False
    categories = [unicodedata.category(c) for c in value]
    keycap = "\u20e3" in value
    parts_allowed = all(
        cat in EMOJI_PARTS or c in "#*" or c.isdigit() for c, cat in zip(value, categories, strict=True)
    )
    return parts_allowed and ("So" in categories or keycap)


def timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise PollInputError(
            "timezone",
            f"timezone {name[:64]!r} is not an IANA time zone; use a name like Europe/Berlin or UTC.",
        ) from None
    return name


def times(opens_at: datetime, closes_at: datetime, now: datetime) -> None:
    if closes_at <= now:
        raise PollInputError("closesAt", "closesAt is in the past; a poll must close in the future.")
    if closes_at <= opens_at:
        raise PollInputError("closesAt", "closesAt must be after opensAt.")
    duration = closes_at - max(opens_at, now)
    if duration < MIN_DURATION:
        raise PollInputError("closesAt", "A poll must be open for at least a minute; move closesAt later.")
    if closes_at - opens_at > MAX_DURATION:
        raise PollInputError("closesAt", "A poll may be open for at most 30 days; move closesAt earlier.")
    if opens_at - now > MAX_LEAD:
        raise PollInputError("opensAt", "opensAt is more than a year away; schedule polls within a year.")


def max_choices(value: int, option_count: int) -> int:
    if not 1 <= value <= option_count:
        raise PollInputError(
            "maxChoices",
            f"maxChoices must be between 1 and the number of options ({option_count}); got {value}.",
        )
    return value


def pings(draft: PollDraft) -> None:
    if draft.ping_role_id is None and (draft.ping_on_open or draft.ping_on_close):
        field = "pingOnOpen" if draft.ping_on_open else "pingOnClose"
        raise PollInputError(field, f"{field} needs pingRoleId: say which role to ping.")


def in_guild(draft: PollDraft, snapshot: GuildSnapshot) -> None:
    """The channel is one of the guild's where the bot can post, and the roles are the guild's
    (the ping role pingable there), all from the cached role data: no Discord call."""
    try:
        abilities = bot_abilities(snapshot, draft.channel_id)
        allowed = channel_permissions(snapshot, draft.channel_id)
    except ChannelNotFound as error:
        raise PollInputError("channelId", error.message) from None
    if snapshot.channels[draft.channel_id].type not in POSTABLE_CHANNEL_TYPES:
        raise PollInputError(
            "channelId",
            f"Channel {draft.channel_id} is not a text or announcement channel; polls are posted there.",
        )
    if abilities.channel_problem is Reason.CHANNEL_NOT_VISIBLE:
        raise PollInputError(
            "channelId", f"The bot cannot see channel {draft.channel_id}; give it View Channel there."
        )
    if abilities.channel_problem is Reason.CANNOT_SEND_MESSAGES:
        raise PollInputError(
            "channelId",
            f"The bot cannot send messages in channel {draft.channel_id}; give it Send Messages there.",
        )
    if not allowed & perms.EMBED_LINKS and not allowed & perms.ADMINISTRATOR:
        raise PollInputError(
            "channelId",
            f"The bot cannot embed links in channel {draft.channel_id}, and a poll is an embed; give it"
            " Embed Links there.",
        )
    if draft.ping_role_id is not None:
        validation = validate_role(snapshot, draft.ping_role_id, abilities)
        if not validation.can_ping and validation.reason is not None:
            raise PollInputError(
                "pingRoleId", f"Role {draft.ping_role_id} {_WHY_NOT_PINGABLE[validation.reason]}."
            )
    for index, role_id in enumerate(draft.allowed_role_ids):
        if role_id not in snapshot.roles_by_id:
            raise PollInputError(f"allowedRoleIds[{index}]", f"Role {role_id} is not a role of this guild.")


def allowed_roles(role_ids: list[int]) -> tuple[int, ...]:
    if len(role_ids) > MAX_ALLOWED_ROLES:
        raise PollInputError(
            "allowedRoleIds",
            f"allowedRoleIds may hold at most {MAX_ALLOWED_ROLES} roles; got {len(role_ids)}.",
        )
    return tuple(dict.fromkeys(role_ids))


def checked(draft: PollDraft, now: datetime) -> PollDraft:
    """The draft with its text trimmed, or the first rule it breaks."""
    draft = replace(
        draft,
        name=text(draft.name, "name", MAX_NAME),
        question=text(draft.question, "question", MAX_QUESTION),
        options=options([(o.text, o.emoji) for o in draft.options]),
        timezone=timezone(draft.timezone),
        allowed_role_ids=allowed_roles(list(draft.allowed_role_ids)),
    )
    aware(draft.opens_at, "opensAt")
    aware(draft.closes_at, "closesAt")
    times(draft.opens_at, draft.closes_at, now)
    max_choices(draft.max_choices, len(draft.options))
    pings(draft)
    return draft
