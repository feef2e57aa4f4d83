"""The service's settings: one typed object read from ``POLLY_*`` environment variables.

Nothing imports a settings instance; entry points build one with :func:`load_settings`
and pass it down.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AnyUrl, BeforeValidator, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

DISCORD_API_URL = "https://discord.com/api/v10"
DISCORD_GATEWAY_URL = "wss://gateway.discord.gg/"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


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
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis connection URL.")
    log_level: Annotated[LogLevel, BeforeValidator(lambda value: str(value).upper())] = Field(
        default="INFO", description="Log level: DEBUG, INFO, WARNING or ERROR."
    )


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
