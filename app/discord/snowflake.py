"""Discord ids (snowflakes): up to 20 ASCII digits, between 1 and 2^64 - 1."""

from __future__ import annotations

import re

MAX_SNOWFLAKE = 2**64 - 1
_DIGITS = re.compile(r"[0-9]{1,20}")


def parse_snowflake(text: str) -> int | None:
    """The id ``text`` spells, or None if it is not a snowflake ("²" is a digit to
    ``str.isdigit`` but not to Discord)."""
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if 0 < value <= MAX_SNOWFLAKE else None


def is_digits(text: str) -> bool:
    """Whether ``text`` is a non-empty run of ASCII digits."""
    return bool(text) and text.isascii() and text.isdigit()
