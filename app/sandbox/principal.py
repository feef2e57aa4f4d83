"""Whom a sandbox REST call acts for, as the authentication middleware found it."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class Principal:
    """The bot, or a user through an OAuth2 Bearer token."""

    user_id: int
    # The rate limiter's key: the bot's token, or the Bearer token's user.
    rate_key: str
    # None for the bot, which needs no OAuth2 scopes.
    scopes: frozenset[str] | None = None

    @property
    def is_bot(self) -> bool:
        return self.scopes is None

    def allows(self, scope: str) -> bool:
        return self.scopes is None or scope in self.scopes


PRINCIPAL = web.RequestKey("principal", Principal)
