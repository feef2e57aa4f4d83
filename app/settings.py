"""The service's settings: one typed object read from ``POLLY_*`` environment variables.

Nothing imports a settings instance; entry points build one with :func:`load_settings`
and pass it down.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AnyUrl, BeforeValidator, Field, RedisDsn, SecretStr, TypeAdapter, ValidationError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.cache.cluster_url import is_cluster_url, parse_cluster_url

DISCORD_API_URL = "https://discord.com/api/v10"
DISCORD_GATEWAY_URL = "wss://gateway.discord.gg/"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
_REDIS_DSN: TypeAdapter[RedisDsn] = TypeAdapter(RedisDsn)


def _redis_url(value: object) -> object:
    """One server (``redis://``, ``rediss://``) or a Redis Cluster (``redis+cluster://`` or
    ``rediss+cluster://`` and one or more nodes, comma-separated)."""
    if not isinstance(value, str):
        return str(value) if isinstance(value, AnyUrl) else value
    if is_cluster_url(value):
        parse_cluster_url(value)  # a ValueError says what is wrong
        return value
    try:
        return str(_REDIS_DSN.validate_python(value))
    except ValidationError as error:
        reason = error.errors()[0]["msg"]
        raise ValueError(f"{reason}; a cluster is redis+cluster://host:port[,host:port...]/") from None


RedisUrl = Annotated[str, BeforeValidator(_redis_url)]


def _origins(value: object) -> object:
    """Comma-separated or a JSON list; each an origin (scheme://host[:port]) without a path."""
    if isinstance(value, str):
        text = value.strip()
        value = (
            json.loads(text) if text.startswith("[") else [part for part in text.split(",") if part.strip()]
        )
    if isinstance(value, list):
        origins = [str(origin).strip().rstrip("/") for origin in value]
        for origin in origins:
            if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
        return origins
    return value


def _networks(value: object) -> object:
    """Comma-separated or a JSON list; each an IP address or a network in CIDR notation."""
    if isinstance(value, str):
        text = value.strip()
        value = (
            json.loads(text) if text.startswith("[") else [part for part in text.split(",") if part.strip()]
        )
    if isinstance(value, list):
        networks = []
        for item in value:
            text = str(item).strip()
            try:
                networks.append(ipaddress.ip_network(text))
            except ValueError:
                raise ValueError(
                    f"{text!r} is not an IP address or a network like 172.18.0.0/16 (host names are not"
                    " looked up, and a network's address has its host bits zero)"
                ) from None
        return networks
    return value


def _empty_is_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


def _shard_ids(value: object) -> object:
    """``0-3``, ``0,2,4`` or ``0-1,6``: shard ids, each once, in order."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    ids: set[int] = set()
    for part in value.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            low, high = int(first), int(last) if dash else int(first)
        except ValueError:
            raise ValueError(f"{part.strip()!r} is not a shard id or a range like 0-3") from None
        if low < 0 or high < low:
            raise ValueError(f"{part.strip()!r} is not a shard id or a range like 0-3")
        ids.update(range(low, high + 1))
    return sorted(ids)


class SettingsError(Exception):
    """A setting is missing or wrong; the message names it and says what to do."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POLLY_", extra="ignore", frozen=True)

    discord_api_url: AnyUrl = Field(
        default=AnyUrl(DISCORD_API_URL),
        description="Base URL of Discord's REST API, v10 (the sandbox's is http://HOST:PORT/api/v10).",
    )
    discord_gateway_url: AnyUrl = Field(
        default=AnyUrl(DISCORD_GATEWAY_URL),
        description="URL of Discord's gateway (the sandbox's is ws://HOST:PORT/gateway).",
    )
    discord_token: SecretStr | None = Field(default=None, description="The bot's token.")
    redis_url: RedisUrl = Field(
        default="redis://127.0.0.1:6379/0",
        description="Redis: redis://host:port/db (rediss:// for TLS), or a Redis Cluster as"
        " redis+cluster://host:port[,host:port...]/ (rediss+cluster:// for TLS), naming one or more"
        " of its nodes.",
    )
    redis_timeout: float = Field(
        default=0.5, gt=0, le=30, description="Seconds a Redis command may take before Redis counts as down."
    )
    redis_max_connections: int = Field(
        default=128, ge=1, le=10_000, description="Redis connections per process."
    )
    cache_prefix: str = Field(
        default="", max_length=64, pattern=r"^[A-Za-z0-9_.:-]*$", description="Prefix for every Redis key."
    )
    role_cache_ttl: int = Field(
        default=1800, ge=1, description="Seconds the guild roles and role validations stay cached."
    )
    stale_grace: int = Field(
        default=86400,
        ge=0,
        description="Seconds past the TTL that last known data is kept for Discord outages.",
    )
    negative_cache_ttl: int = Field(
        default=60, ge=1, description="Seconds an unknown guild (or one without the bot) is remembered."
    )
    fill_wait: float = Field(
        default=5.0, gt=0, le=60, description="Seconds a request waits for another's fetch of the same guild."
    )
    discord_timeout: float = Field(
        default=8.0, gt=0, le=120, description="Seconds one Discord REST call may take, retries included."
    )
    max_concurrent_fills: int = Field(
        default=16, ge=1, le=1000, description="Guilds fetched from Discord at once, per process."
    )
    response_cache: bool = Field(default=True, description="Cache serialized results of repeatable queries.")
    max_guilds_per_request: int = Field(
        default=25, ge=1, le=1000, description="Distinct guilds one GraphQL request may read."
    )
    subscriber_queue_limit: int = Field(
        default=256, ge=1, le=100_000, description="Events queued per subscription before it resyncs."
    )
    subscriber_buffer_limit: int = Field(
        default=256 * 1024,
        ge=1024,
        description="Bytes unsent to one WebSocket past which it is behind: it skips to a resync.",
    )
    keep_alive_interval: float = Field(
        default=15.0, gt=0, le=300, description="Seconds between WebSocket keep-alive messages."
    )
    max_subscriptions_per_connection: int = Field(
        default=100, ge=1, le=10_000, description="Operations one WebSocket may run at once."
    )
    connection_init_timeout: float = Field(
        default=10.0, gt=0, le=300, description="Seconds a WebSocket client has to send connection_init."
    )
    frontend_dir: Path | None = Field(
        default=None, description="Directory of the front-end stub served at /; default: the bundled one."
    )
    shard_count: int | None = Field(
        default=None,
        ge=1,
        description="Gateway shards for polly bot; unset: what GET /gateway/bot recommends.",
    )
    shard_ids: Annotated[list[int] | None, NoDecode, BeforeValidator(_shard_ids)] = Field(
        default=None,
        description="The gateway shards this polly bot runs (0-3, or 0,2,4), so that several bot"
        " processes split them; needs POLLY_SHARD_COUNT. Unset: every shard.",
    )
    event_stream_length: int = Field(
        default=1000, ge=10, description="Events kept per guild stream for subscribers to replay."
    )
    scheduler_interval: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="How often polly bot asks the database for polls due to open, close or change"
        " (s); openPollNow and closePoll take effect within it.",
    )
    scheduler_lease: float = Field(
        default=60.0,
        ge=5,
        description="How long a scheduler process holds a poll's due work (s); another process takes"
        " it over after that if the first died.",
    )
    scheduler_concurrency: int = Field(
        default=64, ge=1, le=1000, description="Polls one scheduler process works on at once."
    )
    discord_global_rate: int = Field(
        default=50,
        ge=1,
        description="Requests a second Discord allows the bot over all routes; the poll schedulers of"
        " all bot processes share it (through Redis).",
    )
    discord_channel_rate: int = Field(
        default=5,
        ge=1,
        description="Messages the schedulers post (and, separately, edit) per channel in"
        " POLLY_DISCORD_CHANNEL_WINDOW seconds: Discord's per-channel limit.",
    )
    discord_channel_window: float = Field(
        default=5.0, gt=0, le=3600, description="The window of POLLY_DISCORD_CHANNEL_RATE (s)."
    )
    interaction_defer_after: float = Field(
        default=1.0,
        ge=0,
        le=2.5,
        description="Seconds polly bot waits for a button vote to be recorded before acknowledging"
        " the click first (Discord allows 3) and editing the answer in afterwards.",
    )
    data_dir: Path = Field(
        default_factory=lambda: Path.home() / ".local" / "share" / "polly",
        description="Directory of the SQLite database when POLLY_DATABASE_URL is not set.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the database (postgresql+asyncpg://...); default: SQLite in the"
        " data directory.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs session cookies; at least 32 characters. Required by polly api.",
    )
    discord_client_id: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,20}$",
        description="OAuth2 client id for Discord login; default: the bot's application id.",
    )
    discord_client_secret: SecretStr | None = Field(
        default=None, description="OAuth2 client secret; Discord login is off without it."
    )
    public_url: AnyUrl | None = Field(
        default=None,
        description="The API's public base URL (https://polly.example); the login callback is built on"
        " it. Default: the URL each request came to.",
    )
    session_ttl: int = Field(
        default=7 * 86400, ge=60, description="Seconds a login session lasts before logging in again."
    )
    viewer_cache_ttl: int = Field(
        default=60,
        ge=1,
        le=3600,
        description="Seconds a signed-in user's guilds and permissions are cached before asking Discord.",
    )
    viewer_grace: int = Field(
        default=900,
        ge=0,
        le=86400,
        description="Seconds a signed-in user's last known guilds keep serving while Discord cannot list"
        " them; past it their requests fail with DISCORD_UNAVAILABLE.",
    )
    api_key_cache_ttl: int = Field(
        default=60, ge=1, le=3600, description="Seconds an API key's record is cached in Redis."
    )
    rate_limit_per_second: float = Field(
        default=20.0, gt=0, description="Requests per second each caller (key, user or address) may make."
    )
    rejected_document_ms: float = Field(
        default=2.0,
        gt=0,
        description="Every this many milliseconds of server time spent refusing a caller's document"
        " (parsing, validation, limits) costs it one more request of its rate limit.",
    )
    rate_limit_burst: int = Field(
        default=60, ge=1, description="Requests a caller may make at once before the per-second rate applies."
    )
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Largest request body (and WebSocket message) accepted."
    )
    max_query_depth: int = Field(default=10, ge=2, le=100, description="Deepest selection nesting allowed.")
    max_aliases: int = Field(default=30, ge=1, le=10_000, description="Aliases one document may use.")
    max_tokens: int = Field(default=2000, ge=100, description="GraphQL tokens one document may hold.")
    max_query_cost: int = Field(
        default=5000, ge=1, description="Most cost points one operation may have (see the README)."
    )
    introspection: bool = Field(default=True, description="Answer introspection queries (__schema).")
    cors_origins: Annotated[list[str], NoDecode, BeforeValidator(_origins)] = Field(
        default_factory=list,
        description="Origins allowed to call the API from browsers (JSON list or comma-separated).",
    )
    log_level: Annotated[LogLevel, BeforeValidator(lambda value: str(value).upper())] = Field(
        default="INFO", description="Log level: DEBUG, INFO, WARNING or ERROR."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text (one readable line per entry) or json (one JSON object per line, for a log store).",
    )
    request_log: bool = Field(
        default=True,
        description="Log one line per HTTP request at INFO (health checks and scrapes at DEBUG).",
    )
    metrics_dir: Path | None = Field(
        default=None,
        description="Directory where the worker processes of one polly api share their metrics"
        " (prometheus-client's multiprocess mode); empty it before the server starts. Unset: each"
        " process serves its own.",
    )
    bot_metrics_port: Annotated[int | None, BeforeValidator(_empty_is_none)] = Field(
        default=9101,
        ge=0,
        le=65535,
        description="Port of polly bot's own /metrics (the bot serves no other HTTP); empty: none.",
    )
    bot_metrics_host: str = Field(
        default="127.0.0.1",
        description="Interface polly bot's metrics listen on (0.0.0.0 in a container).",
    )
    trusted_proxies: Annotated[
        list[ipaddress.IPv4Network | ipaddress.IPv6Network], NoDecode, BeforeValidator(_networks)
    ] = Field(
        default_factory=list,
        description="Addresses and networks (CIDR) of the reverse proxies whose X-Forwarded-For and"
        " X-Forwarded-Proto are believed (comma-separated or a JSON list); none by default.",
    )
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Seconds a request's head (request line and headers) may take to arrive, from the"
        " connection or the head's first byte; then 408 and the connection closes.",
    )
    body_timeout: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds a request's body may take to arrive after its head; then 408 and the"
        " connection closes.",
    )
    max_connections_per_address: int = Field(
        default=64,
        ge=1,
        description="Connections one client address may hold open at once (HTTP and WebSocket);"
        " trusted proxies are not limited.",
    )


def secrets_of(settings: Settings) -> list[str]:
    """The secrets settings hold, for the logs to take out of any line that would show one."""
    held = (settings.discord_token, settings.secret_key, settings.discord_client_secret)
    secrets = [secret.get_secret_value() for secret in held if secret is not None]
    if settings.database_url and "@" in settings.database_url:
        # postgresql+asyncpg://user:password@host/db: the password.
        credentials = settings.database_url.split("://", 1)[-1].rsplit("@", 1)[0]
        if ":" in credentials:
            secrets.append(credentials.split(":", 1)[1])
    return secrets


def shard_plan(settings: Settings) -> tuple[int | None, list[int] | None]:
    """(shard count, the shards this process runs): both None for every shard Discord
    recommends; a sentence when POLLY_SHARD_IDS cannot be run."""
    ids = settings.shard_ids
    if ids is None:
        return settings.shard_count, None
    if settings.shard_count is None:
        raise SettingsError(
            "POLLY_SHARD_IDS needs POLLY_SHARD_COUNT: every process that splits the shards must agree"
            " on how many there are."
        )
    beyond = [shard for shard in ids if shard >= settings.shard_count]
    if beyond:
        raise SettingsError(
            f"POLLY_SHARD_IDS names shard {beyond[0]}, but POLLY_SHARD_COUNT={settings.shard_count}"
            f" numbers them 0 to {settings.shard_count - 1}."
        )
    return settings.shard_count, ids


def require_token(settings: Settings) -> str:
    """The bot token, or a sentence saying how to set it."""
    if settings.discord_token is None or not settings.discord_token.get_secret_value().strip():
        raise SettingsError(
            "POLLY_DISCORD_TOKEN is not set: set it to the bot's token "
            "(the sandbox's default fixture uses sandbox-bot-token)."
        )
    return settings.discord_token.get_secret_value().strip()


MIN_SECRET_KEY_LENGTH = 32


def require_secret_key(settings: Settings) -> str:
    """The cookie-signing secret, or a sentence saying how to set one."""
    secret = "" if settings.secret_key is None else settings.secret_key.get_secret_value()
    if len(secret) < MIN_SECRET_KEY_LENGTH:
        raise SettingsError(
            f"POLLY_SECRET_KEY must be set to a random string of at least {MIN_SECRET_KEY_LENGTH} "
            "characters (it signs login sessions); make one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'."
        )
    return secret


def database_url(settings: Settings) -> str:
    """Where keys, sessions and polls live: POLLY_DATABASE_URL, else SQLite in POLLY_DATA_DIR."""
    if settings.database_url:
        return settings.database_url
    return f"sqlite+aiosqlite:///{settings.data_dir / 'polly.db'}"


def describe_error(error: ValidationError) -> str:
    """Turn pydantic's report into sentences that name the environment variables."""
    sentences = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"])
        variable = f"POLLY_{field.upper()}"
        sentences.append(f"{variable} is not valid: {problem['msg']} (got {problem.get('input')!r}).")
    return " ".join(sentences)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError(describe_error(error)) from error
