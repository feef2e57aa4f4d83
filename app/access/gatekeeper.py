"""Every HTTP request's way in: who is asking, whether their rate allows it now, and the
cached answer if there is one.

An API key's request takes one round trip to Redis for all three (the key is checked inside
Redis against its cached record, see RequestGate.admit_key); a signed-in user's takes two (their
guilds decide which cached answers they may see). Bad credentials are charged to the sender's
address, so guessing costs the guesser.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.access.authenticator import Authenticator, key_principal
from app.access.credentials import Credentials
from app.access.errors import AccessUnavailable, RateLimited
from app.access.principal import Principal, anonymous
from app.cache.connection import CacheUnavailable
from app.cache.gate import KeyVerdict, RequestGate
from app.storage.api_keys import ApiKeyRecord, hash_secret, parse_token
from app.storage.database import DatabaseError

# Names the access scope an answer is for → the digest its cached copy is kept under.
DigestOf = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Admitted:
    principal: Principal | None  # None when the answer came from the cache
    cached: bytes | None = None


class Gatekeeper:
    def __init__(self, authenticator: Authenticator, gate: RequestGate) -> None:
        self.authenticator = authenticator
        self.gate = gate

    async def admit(self, credentials: Credentials, digest_of: DigestOf | None) -> Admitted:
        """Raises RateLimited, or AccessUnavailable when the database cannot be asked. Refused
        credentials come back as a principal that says why."""
        try:
            return await self._admit(credentials, digest_of)
        except DatabaseError as error:
            raise AccessUnavailable from error

    async def _admit(self, credentials: Credentials, digest_of: DigestOf | None) -> Admitted:
        by_address = f"ip:{credentials.client}"
        key = _bearer_key(credentials)
        if key is not None:
            return await self._admit_key(*key, by_address, digest_of)
        principal = await self.authenticator.principal(credentials)
        if principal.refused is not None:
            return await self._refuse(principal)
        digest = digest_of(principal.access_scope) if digest_of and principal.authenticated else None
        admission = await self.gate.admit(principal.bucket, digest)
        if not admission.allowed:
            raise RateLimited(admission.retry_after)
        return Admitted(principal, admission.cached)

    async def _admit_key(
        self, key_id: str, secret: str, by_address: str, digest_of: DigestOf | None
    ) -> Admitted:
        digest = digest_of(f"key:{key_id}") if digest_of else None
        secret_hash = hash_secret(secret)
        charged = False  # whether the sender's address paid for this request already
        for _ in range(2):  # the second time with the record cached
            try:
                admission = await self.gate.admit_key(key_id, secret_hash, digest)
            except CacheUnavailable:
                # Degraded: the database decides, and nothing is rate limited.
                record = await self.authenticator.load_key(key_id)
                return await self._checked(key_principal(record, secret, by_address))
            if admission.verdict is KeyVerdict.LIMITED:
                raise RateLimited(admission.retry_after)
            if admission.verdict is KeyVerdict.OK and admission.cached is not None:
                return Admitted(None, admission.cached)
            if admission.verdict is not KeyVerdict.MISS and admission.record is not None:
                principal = key_principal(ApiKeyRecord.from_json(admission.record), secret, by_address)
                return Admitted(principal) if charged else await self._checked(principal)
            # Not cached: the database is asked, at the sender's address's cost first, so that
            # made-up key ids cannot flood the database past the rate limit.
            if not charged:
                await self._refuse(anonymous(by_address))
                charged = True
            if await self.authenticator.load_key(key_id) is None:
                return Admitted(key_principal(None, secret, by_address))
        # Cached and gone at once (Redis evicting under memory pressure): the database decides.
        return await self._checked(
            key_principal(await self.authenticator.load_key(key_id), secret, by_address)
        )

    async def _checked(self, principal: Principal) -> Admitted:
        return await self._refuse(principal) if principal.refused is not None else Admitted(principal)

    async def _refuse(self, principal: Principal) -> Admitted:
        admission = await self.gate.admit(principal.bucket)
        if not admission.allowed:
            raise RateLimited(admission.retry_after)
        return Admitted(principal)


def _bearer_key(credentials: Credentials) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed ``Authorization: Bearer polly_...``; None otherwise
    (the authenticator explains what is wrong with other headers)."""
    if credentials.authorization is None:
        return None
    scheme, _, token = credentials.authorization.strip().partition(" ")
    return parse_token(token.strip()) if scheme.lower() == "bearer" else None
