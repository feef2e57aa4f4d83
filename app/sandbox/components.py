"""Message components (action rows of buttons): Discord's rules across fields, and the shape kept.

``app.sandbox.bodies`` checks each field on its own (types, lengths, styles); this module checks
what spans fields and buttons, as Discord does after that: link buttons (style 5) need a ``url``
and no ``custom_id``, the others a ``custom_id`` and no ``url``; ``custom_id`` is unique within
the message; an emoji needs a name. Accepted components are kept in Discord's response shape
(``ActionRowComponentResponse`` / ``ButtonComponentResponse``), where every component has an
``id``: the one the request gave, or the next free number counting from 1 in document order.
"""

from __future__ import annotations

from typing import Any

from app.sandbox import errors
from app.sandbox.bodies import ActionRow, Button, ComponentEmoji

LINK = 5

Path = tuple[str | int, ...]
Problem = tuple[Path, str, str]


def _emoji_problems(emoji: ComponentEmoji, path: Path) -> list[Problem]:
    # Without an id the name must be a Unicode emoji: Discord refuses ":thumbsup:" or "vote"
    # the same way. A plain-ASCII name is the cheap sign of a name that is no emoji.
    if emoji.name is None or (emoji.id is None and emoji.name.isascii()):
        return [((*path, "emoji", "name"), "BUTTON_COMPONENT_INVALID_EMOJI", "Invalid emoji")]
    return []


def _button_problems(button: Button, path: Path) -> list[Problem]:
    problems: list[Problem] = []
    exclusive = (
        "BUTTON_COMPONENT_CUSTOM_ID_URL_MUTUALLY_EXCLUSIVE",
        "A custom id and url cannot both be specified",
    )
    if button.style == LINK:
        if button.url is None:
            problems.append(((*path, "url"), "BUTTON_COMPONENT_URL_REQUIRED", "A url is required"))
        if button.custom_id is not None:
            problems.append(((*path, "custom_id"), *exclusive))
    else:
        if button.custom_id is None:
            problems.append(
                ((*path, "custom_id"), "BUTTON_COMPONENT_CUSTOM_ID_REQUIRED", "A custom id is required")
            )
        if button.url is not None:
            problems.append(((*path, "url"), *exclusive))
    if button.emoji is not None:
        problems.extend(_emoji_problems(button.emoji, path))
    return problems


def _walk(rows: list[ActionRow]) -> list[tuple[Path, ActionRow | Button]]:
    """Every component with its path in the request, in document order."""
    found: list[tuple[Path, ActionRow | Button]] = []
    for row_index, row in enumerate(rows):
        found.append((("components", row_index), row))
        for index, button in enumerate(row.components):
            found.append((("components", row_index, "components", index), button))
    return found


def checked_components(rows: list[ActionRow]) -> list[dict[str, Any]]:
    """The components as a message keeps and returns them, or Discord's 50035 for the problems."""
    problems: list[Problem] = []
    custom_ids: set[str] = set()
    given_ids: set[int] = set()
    components = _walk(rows)
    for path, component in components:
        if component.id:
            if component.id in given_ids:
                # Discord documents that ids are unique in a message but not the words of this
                # refusal; these follow COMPONENT_CUSTOM_ID_DUPLICATED's.
                problems.append(
                    ((*path, "id"), "COMPONENT_ID_DUPLICATED", "Component id cannot be duplicated")
                )
            given_ids.add(component.id)
        if isinstance(component, Button):
            problems.extend(_button_problems(component, path))
            if component.custom_id is not None:
                if component.custom_id in custom_ids:
                    problems.append(
                        (
                            (*path, "custom_id"),
                            "COMPONENT_CUSTOM_ID_DUPLICATED",
                            "Component custom id cannot be duplicated",
                        )
                    )
                custom_ids.add(component.custom_id)
    if problems:
        raise errors.invalid_form_body(problems)

    free = (number for number in range(1, 2**31) if number not in given_ids)
    numbers = {path: component.id or next(free) for path, component in components}
    return [
        {
            "type": 1,
            "id": numbers[("components", row_index)],
            "components": [
                _button_json(button, numbers[("components", row_index, "components", index)])
                for index, button in enumerate(row.components)
            ],
        }
        for row_index, row in enumerate(rows)
    ]


def _button_json(button: Button, number: int) -> dict[str, Any]:
    data: dict[str, Any] = {"type": 2, "id": number, "style": button.style}
    if button.label is not None:
        data["label"] = button.label
    if button.custom_id is not None:
        data["custom_id"] = button.custom_id
    if button.url is not None:
        data["url"] = button.url
    if button.emoji is not None:
        data["emoji"] = _emoji_json(button.emoji)
    # Discord leaves out a false ``disabled``, as it leaves out other defaults.
    if button.disabled:
        data["disabled"] = True
    return data


def _emoji_json(emoji: ComponentEmoji) -> dict[str, Any]:
    data: dict[str, Any] = {"name": emoji.name}
    if emoji.id is not None:
        data.update({"id": str(emoji.id), "animated": bool(emoji.animated)})
    return data
