"""The service's settings: one typed object read from ``POLLY_*`` environment variables.

Nothing imports a settings instance; entry points build one with :func:`load_settings`
and pass it down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AnyUrl, BeforeValidator, Field, RedisDsn, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

DISCORD_API_URL = "https://discord.com/api/v10"
DISCORD_GATEWAY_URL = "wss://gateway.discord.gg/"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
RedisUrl = RedisDsn


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
        default=RedisUrl("redis://127.0.0.1:6379/0"), description="Redis connection URL."
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
    event_stream_length: int = Field(
        default=1000, ge=10, description="Events kept per guild stream for subscribers to replay."
    )
    bot_mode: Literal["write-through", "invalidate"] = Field(
        default="write-through",
        description="write-through (ours) or invalidate (the origin design, kept for comparison).",
    )
    log_level: Annotated[LogLevel, BeforeValidator(lambda value: str(value).upper())] = Field(
        default="INFO", description="Log level: DEBUG, INFO, WARNING or ERROR."
    )


def require_token(settings: Settings) -> str:
    """The bot token, or a sentence saying how to set it."""
    if settings.discord_token is None or not settings.discord_token.get_secret_value().strip():
        raise SettingsError(
            "POLLY_DISCORD_TOKEN is not set: set it to the bot's token "
            "(the sandbox's default fixture uses sandbox-bot-token)."
        )
    return settings.discord_token.get_secret_value().strip()


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
