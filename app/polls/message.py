"""The Discord messages a poll sends: what they show, and whom they may ping (one role at most).

Every payload carries ``allowed_mentions`` with ``parse: []``: whatever a poll's name, question
or options contain (``@everyone``, ``<@&role>``, ``<@user>``), Discord pings nobody for it. The
one role a poll may ping, validated just before sending, is listed in ``roles`` and is the only
mention in ``content``; everything users wrote is in the embed, where nothing pings anyway.
"""

from __future__ import annotations

import re
from typing import Any

from app.polls.record import PollRecord, Status

MAX_BUTTONS_PER_ROW = 5
COLORS = {Status.OPEN: 0x5865F2, Status.CLOSED: 0x57F287, Status.CANCELLED: 0x99AAB5}
_CUSTOM_EMOJI = re.compile(r"<(a?):(\w{2,32}):(\d{1,20})>")


def custom_id(poll_id: int, position: int) -> str:
    """What a button click names: the next issue's votes read it back."""
    return f"poll:{poll_id}:{position}"


def allowed_mentions(role_id: int | None) -> dict[str, Any]:
    return {"parse": [], "roles": [] if role_id is None else [str(role_id)], "replied_user": False}


def _timestamp(poll: PollRecord, style: str) -> str:
    return f"<t:{int(poll.closes_at.timestamp())}:{style}>"


def _emoji(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    custom = _CUSTOM_EMOJI.fullmatch(value)
    if custom:
        return {"id": custom.group(3), "name": custom.group(2), "animated": bool(custom.group(1))}
    return {"name": value}


def embed(poll: PollRecord, counts: dict[int, int] | None) -> dict[str, Any]:
    """One field per option, so no field passes Discord's 1,024 characters."""
    fields = []
    for option in poll.options:
        label = f"{option.emoji} {option.text}" if option.emoji else option.text
        value = "\u200b" if counts is None else _votes(counts.get(option.position, 0))
        fields.append({"name": f"{option.position + 1}. {label}"[:256], "value": value, "inline": False})
    if poll.status is Status.OPEN:
        when = f"Closes {_timestamp(poll, 'R')} ({_timestamp(poll, 'F')})"
    elif poll.status is Status.CLOSED:
        when = f"Closed {_timestamp(poll, 'R')}. Final results."
    else:
        when = "This poll was cancelled."
    choices = "Choose one." if poll.max_choices == 1 else f"Choose up to {poll.max_choices}."
    return {
        "title": poll.name[:256],
        "description": f"{poll.question}\n\n{when}\n{choices}"[:4096],
        "fields": fields,
        "color": COLORS.get(poll.status, COLORS[Status.OPEN]),
        "footer": {"text": f"Poll {poll.id}" + (" · anonymous" if poll.anonymous else "")},
    }


def _votes(count: int) -> str:
    return f"{count} vote" if count == 1 else f"{count} votes"


def buttons(poll: PollRecord, *, disabled: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for option in poll.options:
        if option.position % MAX_BUTTONS_PER_ROW == 0:
            rows.append({"type": 1, "components": []})
        button: dict[str, Any] = {
            "type": 2,
            "style": 1,
            "custom_id": custom_id(poll.id, option.position),
            "label": option.text,
            "disabled": disabled,
        }
        emoji = _emoji(option.emoji)
        if emoji is not None:
            button["emoji"] = emoji
        rows[-1]["components"].append(button)
    return rows


def opening(poll: PollRecord, ping_role_id: int | None, nonce: str) -> dict[str, Any]:
    """The poll's message; ``ping_role_id`` only once validated for this channel just now."""
    payload: dict[str, Any] = {
        "embeds": [embed(poll, None)],
        "components": buttons(poll, disabled=False),
        "allowed_mentions": allowed_mentions(ping_role_id),
        "nonce": nonce,
        "enforce_nonce": True,
    }
    if ping_role_id is not None:
        payload["content"] = f"<@&{ping_role_id}>"
    return payload


def current(poll: PollRecord, counts: dict[int, int] | None) -> dict[str, Any]:
    """The edit that shows the poll as it is now: buttons live only while it is open; the
    content is cleared so an edit never pings."""
    return {
        "content": "",
        "embeds": [embed(poll, counts)],
        "components": buttons(poll, disabled=poll.status is not Status.OPEN),
        "allowed_mentions": allowed_mentions(None),
    }


def closing_ping(poll: PollRecord, role_id: int, counts: dict[int, int], nonce: str) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "content": f"<@&{role_id}> The poll has closed; here are the results.",
        "embeds": [embed(poll, counts)],
        "allowed_mentions": allowed_mentions(role_id),
        "nonce": nonce,
        "enforce_nonce": True,
    }
    # Not a reply to the poll's message: a reply needs Read Message History as well.
    return payload
