"""How every process logs: text (the default) or one JSON object per line, with what each line
is about (the request, or the bot's shard, guild and event) and no secret in it.

What a line is about lives in a context variable: asyncio copies it into every task a request
or a gateway dispatch starts, so lines logged deep down (a Discord call, a cache write) carry
the request id without anyone passing it along.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

import orjson

LogFormat = Literal["text", "json"]

# What the current line is about: request_id, or shard, guild and event.
_NOTHING: Mapping[str, object] = MappingProxyType({})
_about: contextvars.ContextVar[Mapping[str, object]] = contextvars.ContextVar(
    "polly_log_about", default=_NOTHING
)

REDACTED = "[redacted]"
# Secrets that have a shape: API keys (polly_<id>_<secret>), bearer credentials, session
# cookies, OAuth codes and tokens in forms or URLs, and the interaction and webhook tokens in
# Discord's URLs (discord.py logs each request's URL at DEBUG).
_SHAPED_SECRETS = (
    (re.compile(r"polly_[a-z0-9]{12}_[A-Za-z0-9_-]{16,128}"), REDACTED),
    (re.compile(r"(?i)\b(Bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {REDACTED}"),
    (
        re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:bot\s+|bearer\s+)?)[^\s\"',}]+"),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"(polly_session=)[^;\s\"']+"), rf"\1{REDACTED}"),
    (
        re.compile(
            r"(?i)(\b(?:access_token|refresh_token|client_secret|code_verifier)\b|[?&](?:code|token|state))"
            r"([\"']?\s*[=:]\s*[\"']?)[A-Za-z0-9._~+/%-]{8,}"
        ),
        rf"\1\2{REDACTED}",
    ),
    (re.compile(r"(/(?:interactions|webhooks)/\d+/)[A-Za-z0-9._-]{16,}"), rf"\1{REDACTED}"),
    # discord.py logs each gateway event at DEBUG: an interaction's token is a field of it.
    (re.compile(r"([\"']token[\"']\s*:\s*[\"'])[^\"']+"), rf"\1{REDACTED}"),
)
# Loggers whose DEBUG lines show a statement's parameters (tokens among them), and nothing an
# operator needs: dropped below INFO whatever the level.
_PARAMETER_LOGGERS = ("aiosqlite",)  # fmt: skip


@contextmanager
def about(**fields: object) -> Iterator[None]:
    """Lines logged inside (and in tasks started inside) carry ``fields``."""
    token = _about.set(
        {**_about.get(), **{name: value for name, value in fields.items() if value is not None}}
    )
    try:
        yield
    finally:
        _about.reset(token)


def set_about(**fields: object) -> None:
    """Like :func:`about` for the rest of the current task (a request's own task)."""
    _about.set({**_about.get(), **fields})


def current(name: str) -> object:
    return _about.get().get(name)


class Redactor(logging.Filter):
    """Takes secrets out of every line, whoever logged it (ours, discord.py, aiohttp, uvicorn).

    Known values (the bot token, POLLY_SECRET_KEY, the OAuth client secret) are replaced
    wherever they appear; secrets made at run time are recognised by their shape."""

    def __init__(self, known: Iterable[str]) -> None:
        super().__init__()
        self.known = sorted({secret for secret in known if len(secret) >= 8}, key=len, reverse=True)

    def clean(self, text: str) -> str:
        for secret in self.known:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern, replacement in _SHAPED_SECRETS:
            text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO and record.name.startswith(_PARAMETER_LOGGERS):
            return False
        message = record.getMessage()
        cleaned = self.clean(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.clean(record.exc_text)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {name: self.clean(v) if isinstance(v, str) else v for name, v in fields.items()}
        return True


class Context(logging.Filter):
    """Puts what the line is about on the record: ``request_id``, ``shard``, ``guild``, ``event``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.about = _about.get()
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        about_fields: Mapping[str, object] = getattr(record, "about", {})
        if about_fields:
            line += " [" + " ".join(f"{name}={value}" for name, value in about_fields.items()) + "]"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then what the line is about and
    any ``fields`` the caller gave (``extra={"fields": {...}}``)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "about", {}))
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["error"] = record.exc_text
        return orjson.dumps(line, default=str).decode()


def configure(level: str, form: LogFormat = "text", *, secrets: Iterable[str] = ()) -> logging.Handler:
    """Log to stderr at ``level`` in ``form``; returns the handler (tests add their own stream)."""
    handler = logging.StreamHandler(sys.stderr)
    prepare(handler, form, secrets=secrets)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    if logging.getLevelName(level) != logging.DEBUG:
        # Alembic says at INFO how it is set up every time a process migrates: noise.
        logging.getLogger("alembic").setLevel(logging.WARNING)
    return handler


def prepare(handler: logging.Handler, form: LogFormat, *, secrets: Iterable[str] = ()) -> None:
    handler.setFormatter(JsonFormatter() if form == "json" else TextFormatter())
    handler.addFilter(Context())
    handler.addFilter(Redactor(secrets))
