"""From credentials to a :class:`Principal`: API keys checked against the database, sessions
against the database and the user's guilds against Discord, each cached briefly in Redis.

Bad credentials do not raise: they give an anonymous principal that says why (``refused``),
which each transport turns into its own answer (HTTP 401, a GraphQL error per operation).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from app.access.cookies import CookieSigner
from app.access.credentials import Credentials, trusted_origin
from app.access.errors import LOGIN_HINT, AccessUnavailable
from app.access.principal import Principal, PrincipalKind, ViewerGuild, anonymous
from app.cache.access_cache import AccessCache
from app.discord.client import DiscordRestError, DiscordUnauthorized, DiscordUnreachable
from app.discord.oauth import DiscordOAuth, OAuthRefused
from app.roles.errors import DiscordUnavailable
from app.roles.single_flight import SingleFlight
from app.storage.api_keys import ApiKeyRecord, ApiKeyStore, parse_token, secret_matches
from app.storage.database import DatabaseError
from app.storage.login_sessions import LoginSessionRecord, LoginSessionStore, hash_session_id

log = logging.getLogger(__name__)

# What an HTTP auth scheme looks like (Basic, Token, Bot, ...): only such a word is repeated.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,19}")

ENDED = "Your login has ended; log in again at /auth/login."
NOT_A_KEY = f"That is not a Polly API key; {LOGIN_HINT}."


class Authenticator:
    def __init__(
        self,
        *,
        cache: AccessCache,
        keys: ApiKeyStore,
        sessions: LoginSessionStore,
        signer: CookieSigner,
        oauth: DiscordOAuth | None,
        key_ttl: int,
        viewer_ttl: int,
        session_ttl: int,
        viewer_grace: float,
        allowed_origins: frozenset[str] = frozenset(),
    ) -> None:
        self.allowed_origins = allowed_origins
        self._cache = cache
        self._keys = keys
        self._sessions = sessions
        self.signer = signer
        self._oauth = oauth
        self._key_ttl = key_ttl
        self._viewer_ttl = viewer_ttl
        self.session_ttl = session_ttl
        # How long a user's last known guilds may stand in while Discord cannot be asked.
        self._viewer_grace = viewer_grace
        self._refreshes: SingleFlight[str, bytes] = SingleFlight()

    async def principal(self, credentials: Credentials, *, cross_site_guard: bool = False) -> Principal:
        """Who presents ``credentials``. With ``cross_site_guard``, a session cookie counts only
        from a trusted origin (for requests a foreign page could start in the user's browser).
        Raises AccessUnavailable when the database cannot be asked."""
        try:
            return await self._principal(credentials, cross_site_guard)
        except DatabaseError as error:
            raise AccessUnavailable from error

    async def _principal(self, credentials: Credentials, cross_site_guard: bool) -> Principal:
        by_address = credentials.address_bucket
        if credentials.bearer is not None:
            scheme, token = credentials.bearer
            if scheme.lower() != "bearer" or not token:
                return anonymous(by_address, _not_bearer(scheme, token))
            return await self._key_principal(token, by_address)
        if credentials.session_cookie is not None:
            if cross_site_guard and not trusted_origin(credentials, self.allowed_origins):
                origin = credentials.origin
                came_from = f"not {origin[:100]}" if origin else "and this request named no Origin"
                return anonymous(
                    by_address, f"Requests signed in by cookie must come from this site's pages, {came_from}."
                )
            session_id = self.signer.session_id(credentials.session_cookie, max_age=self.session_ttl)
            if session_id is None:
                return anonymous(by_address, ENDED)
            return await self._user_principal(session_id, by_address)
        return anonymous(by_address)

    # -- API keys --------------------------------------------------------------------------------

    async def _key_principal(self, token: str, by_address: str) -> Principal:
        parsed = parse_token(token)
        if parsed is None:
            return anonymous(by_address, NOT_A_KEY)
        key_id, secret = parsed
        cached = await self._cache.api_key(key_id)
        record = ApiKeyRecord.from_json(cached) if cached is not None else await self.load_key(key_id)
        return key_principal(record, secret, by_address)

    async def load_key(self, key_id: str) -> ApiKeyRecord | None:
        """A key's record from the database, cached for the next requests."""
        record = await self._keys.get(key_id)
        if record is None:
            return None
        await self._cache.put_api_key(
            key_id,
            record.to_json(),
            secret_hash=record.secret_hash,
            revoked=record.revoked,
            ttl=self._key_ttl,
        )
        if not record.revoked:
            await self._keys.touch(key_id)  # once per cache fill: "last used" to the minute
        return record

    # -- signed-in users -------------------------------------------------------------------------

    async def _user_principal(self, session_id: str, by_address: str) -> Principal:
        digest = hash_session_id(session_id)
        cached = await self._cache.viewer(digest)
        if cached is None:
            try:
                cached = await self._refreshes.run(digest, lambda: self._load_viewer(session_id, digest))
            except SessionEnded:
                return anonymous(by_address, ENDED)
        viewer = orjson.loads(cached)
        if viewer["expires"] <= datetime.now(UTC).timestamp():
            return anonymous(by_address, ENDED)
        return Principal(
            PrincipalKind.USER,
            id=viewer["id"],
            name=viewer["name"],
            guilds={
                int(guild_id): ViewerGuild(int(guild_id), name, owner, permissions)
                for guild_id, name, owner, permissions in viewer["guilds"]
            },
            bucket=f"user:{viewer['id']}",
            via_cookie=True,
        )

    async def _load_viewer(self, session_id: str, digest: str) -> bytes:
        session = await self._sessions.get(session_id)
        if session is None:
            raise SessionEnded
        guilds = await self._guilds(session, session_id)
        viewer = orjson.dumps(
            {
                "id": session.user_id,
                "name": session.username,
                "guilds": [
                    [
                        str(guild["id"]),
                        str(guild.get("name", "")),
                        bool(guild.get("owner")),
                        int(guild.get("permissions", 0)),
                    ]
                    for guild in guilds
                ],
                "expires": session.expires_at.timestamp(),
            }
        )
        lifetime = (session.expires_at - datetime.now(UTC)).total_seconds()
        await self._cache.put_viewer(digest, viewer, min(self._viewer_ttl, lifetime))
        return viewer

    async def _guilds(self, session: LoginSessionRecord, session_id: str) -> list[dict[str, Any]]:
        """The user's guilds now, from Discord; the last known list for a short while when Discord
        cannot answer."""
        if self._oauth is None:
            return list(session.guilds or [])
        access_token = session.access_token
        try:
            if session.token_expires_at <= datetime.now(UTC):
                access_token = await self._refresh(session, session_id)
            try:
                guilds = await self._oauth.guilds(access_token)
            except DiscordUnauthorized:
                access_token = await self._refresh(session, session_id)
                guilds = await self._oauth.guilds(access_token)
        except DiscordUnauthorized as error:
            await self._sessions.delete(session_id)
            await self._cache.announce_change(PrincipalKind.USER.value, session.user_id)
            raise SessionEnded from error
        except (DiscordUnreachable, DiscordRestError) as error:
            fetched = session.guilds_fetched_at
            if (
                session.guilds is not None
                and fetched
                and (datetime.now(UTC) - fetched).total_seconds() < self._viewer_grace
            ):
                log.warning("Discord cannot list %s's guilds (%s); using the list of %s.",
                            session.user_id, error, fetched.isoformat())  # fmt: skip
                return list(session.guilds)
            raise DiscordUnavailable(
                "Discord cannot be asked for your guilds right now; try again in a minute."
            ) from error
        await self._sessions.update_guilds(session.id_hash, guilds, datetime.now(UTC))
        if session.guilds is not None and _access_of(session.guilds) != _access_of(guilds):
            # Found here by one request of one process: the user's open connections everywhere
            # are checked again now, not at their next periodic recheck.
            await self._cache.announce_change(PrincipalKind.USER.value, session.user_id)
        return guilds

    async def _refresh(self, session: LoginSessionRecord, session_id: str) -> str:
        if self._oauth is None or not session.refresh_token:
            raise DiscordUnauthorized("The login's token expired and cannot be refreshed.", status=401)
        try:
            grant = await self._oauth.refresh(session.refresh_token)
        except OAuthRefused as error:
            raise DiscordUnauthorized(str(error), status=401) from error
        await self._sessions.update_tokens(
            session.id_hash, grant.access_token, grant.refresh_token, grant.expires_at
        )
        return grant.access_token

    async def forget_session(self, session_id: str, user_id: str | None = None) -> None:
        """Drop a session's cached viewer; with the user's id, also have every API process check
        that user's open connections again (those of this session close)."""
        await self._cache.drop_viewer(hash_session_id(session_id))
        if user_id is not None:
            await self._cache.announce_change(PrincipalKind.USER.value, user_id)


def _access_of(guilds: Sequence[Mapping[str, Any]]) -> set[tuple[str, bool, int]]:
    """What decides a user's access in a guild list: which guilds, ownership and permissions."""
    return {(str(g["id"]), bool(g.get("owner")), int(g.get("permissions", 0))) for g in guilds}


def key_principal(record: ApiKeyRecord | None, secret: str, by_address: str) -> Principal:
    """The caller a key stands for, or a refusal saying why."""
    # Unknown and wrong-secret keys get the same answer: key ids are not secret.
    if record is None or not secret_matches(record, secret):
        return anonymous(by_address, "This API key is not valid; check it was copied whole.")
    if record.revoked:
        return anonymous(by_address, "This API key was revoked; create a new one (polly keys create).")
    return Principal(
        PrincipalKind.API_KEY,
        id=record.id,
        name=record.name or record.id,
        guilds=dict.fromkeys(record.guild_ids),
        scopes=record.scopes,
        bucket=f"key:{record.id}",
    )


class SessionEnded(Exception):
    """The session is gone, expired, or Discord no longer honours its tokens."""


def _not_bearer(scheme: str, token: str) -> str:
    """Why an Authorization header is no API key, never repeating what may be a secret."""
    if not token:
        # One word: the scheme is missing, and the word may be the key itself.
        return "Send API keys as Authorization: Bearer <key>; this header had no scheme."
    if _SCHEME.fullmatch(scheme):
        return f"Send API keys as Authorization: Bearer <key>, not {scheme}."
    return "Send API keys as Authorization: Bearer <key>; this header's scheme is not Bearer."
