"""``polly keys create|list|revoke``: API keys managed from the command line.

The parser lives in ``app/cli.py``; this module runs the commands. It takes the few values
it needs (:class:`KeysTarget`) rather than the settings, like the rest of ``app.storage``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from app.cache.channels import publish
from app.cache.connection import FAILURES, open_redis
from app.storage.api_keys import ApiKeyRecord, ApiKeyStore, KeyInputError, KeyNotFound, check_key_input
from app.storage.database import Database, DatabaseError

# Seconds revoke waits for Redis: long enough for a loaded server, short enough that a dead
# one doesn't hold up a command whose real work (the database) is already done.
REDIS_TIMEOUT = 2.0


@dataclass(frozen=True)
class KeysTarget:
    database_url: str
    redis_url: str
    cache_key: Callable[[str], str]
    """The Redis key where the API caches a key's record (deleted on revoke)."""
    cache_ttl: int
    """Seconds that cached copy lives: how long a revoked key may still work if Redis is down."""
    revoked: Callable[[str], tuple[str, str]] | None = None
    """The pub/sub channel and message telling every API process a key was revoked (its open
    connections are checked again at once)."""


def run_keys_command(args: argparse.Namespace, target: KeysTarget) -> int:
    commands: dict[str, Callable[[argparse.Namespace, KeysTarget], Coroutine[Any, Any, int]]] = {
        "create": _create,
        "list": _list,
        "revoke": _revoke,
    }
    try:
        return asyncio.run(commands[args.keys_command](args, target))
    except (DatabaseError, KeyInputError, KeyNotFound) as error:
        print(f"polly keys {args.keys_command}: {error}", file=sys.stderr)
        return 2


@asynccontextmanager
async def _store(target: KeysTarget) -> AsyncIterator[ApiKeyStore]:
    db = Database(target.database_url)
    try:
        await db.upgrade()
        yield ApiKeyStore(db)
    finally:
        await db.close()


async def _create(args: argparse.Namespace, target: KeysTarget) -> int:
    # Checked before the database is touched: a typo shouldn't create or migrate anything.
    check_key_input(args.guild or [], args.scope or [], args.name)
    async with _store(target) as store:
        record, token = await store.create(args.guild or [], args.scope or [], args.name)
    if args.json:
        print(json.dumps({"token": token, **_public(record)}))
        return 0
    label = f" ({record.name})" if record.name else ""
    print(
        f"Created API key {record.id}{label}.\n"
        f"  token:  {token}\n"
        "  This token cannot be shown again: store it now (only a hash of it is kept).\n"
        f"  guilds: {_guilds(record)}\n"
        f"  scopes: {_scopes(record)}"
    )
    return 0


async def _list(args: argparse.Namespace, target: KeysTarget) -> int:
    async with _store(target) as store:
        records = await store.list()
    if args.json:
        print(json.dumps([_public(record) for record in records]))
    elif not records:
        print("No API keys yet; make one with: polly keys create --guild ID --scope roles:read")
    else:
        header = ("ID", "NAME", "GUILDS", "SCOPES", "CREATED", "LAST USED", "REVOKED")
        rows = [
            (
                record.id,
                record.name or "-",
                _guilds(record),
                _scopes(record),
                _when(record.created_at),
                _when(record.last_used_at),
                _when(record.revoked_at),
            )
            for record in records
        ]
        print(_table(header, rows))
    return 0


async def _revoke(args: argparse.Namespace, target: KeysTarget) -> int:
    asked_at = datetime.now(UTC)
    async with _store(target) as store:
        record = await store.revoke(args.key_id)
    if record.revoked_at is not None and record.revoked_at < asked_at:
        print(f"API key {record.id} was already revoked at {_when(record.revoked_at)}.")
    else:
        print(f"Revoked API key {record.id}.")
    # The database says revoked; the API's cached copy must go too or the key keeps working
    # until that copy expires.
    try:
        await _forget_cached(target, record.id)
    except FAILURES as error:
        print(
            f"polly keys revoke: warning: could not delete the cached copy of {record.id} from Redis at"
            f" {_without_password(target.redis_url)} ({error or type(error).__name__}); the key stops"
            f" working within {target.cache_ttl} seconds (POLLY_API_KEY_CACHE_TTL), when that copy"
            " expires.",
            file=sys.stderr,
        )
    return 0


async def _forget_cached(target: KeysTarget, key_id: str) -> None:
    # One attempt (open_redis never retries): the warning is the fallback, not a slow series.
    client = open_redis(target.redis_url, timeout=REDIS_TIMEOUT, max_connections=1)
    try:
        await client.delete(target.cache_key(key_id))
        if target.revoked is not None:
            await publish(client, *target.revoked(key_id))
    finally:
        await client.aclose()


def _public(record: ApiKeyRecord) -> dict[str, Any]:
    """Everything about a key but its secret's hash; ids as strings, as JSON readers need."""
    return {
        "id": record.id,
        "name": record.name,
        "guild_ids": [str(guild) for guild in sorted(record.guild_ids)],
        "scopes": sorted(record.scopes),
        "created_at": record.created_at.isoformat(),
        "last_used_at": None if record.last_used_at is None else record.last_used_at.isoformat(),
        "revoked_at": None if record.revoked_at is None else record.revoked_at.isoformat(),
        "revoked": record.revoked,
    }


def _guilds(record: ApiKeyRecord) -> str:
    return ", ".join(str(guild) for guild in sorted(record.guild_ids))


def _scopes(record: ApiKeyRecord) -> str:
    return ", ".join(sorted(record.scopes))


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[column]) for row in (header, *rows)) for column in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in (header, *rows)
    ]
    return "\n".join(line.rstrip() for line in lines)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))
