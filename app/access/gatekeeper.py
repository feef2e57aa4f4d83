"""Every HTTP request's way in: who is asking, whether their rate allows it now, and the
cached answer if there is one.

An API key's request takes one script in Redis for all three (the key is checked inside Redis
against its cached record, see RequestGate.admit_key), and a cached answer one more round trip
to check its guilds are unchanged; a signed-in user's takes one more (their guilds decide which
cached answers they may see). Bad credentials are charged to the sender's address, so guessing
costs the guesser.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.access.authenticator import Authenticator, key_principal
from app.access.credentials import Credentials
from app.access.errors import AccessUnavailable, RateLimited
from app.access.principal import Principal, anonymous
from app.cache.connection import CacheUnavailable
from app.cache.gate import KeyAdmission, KeyVerdict, RequestGate
from app.cache.keys import response_name
from app.storage.api_keys import ApiKeyRecord, hash_secret, parse_token
from app.storage.database import DatabaseError

# Names the access scope an answer is for → the digest its cached copy is kept under.
DigestOf = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Admitted:
    principal: Principal | None  # None when the answer came from the cache
    cached: bytes | None = None
    digest: str | None = None  # the name the answer may be cached under, if any


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
        by_address = credentials.address_bucket
        key = _bearer_key(credentials)
        if key is not None:
            return await self._admit_key(*key, by_address, digest_of)
        principal = await self.authenticator.principal(credentials)
        if principal.refused is not None:
            return await self._refuse(principal)
        digest = (
            response_name(principal.bucket, digest_of(principal.access_scope))
            if digest_of and principal.authenticated
            else None
        )
        admission = await self.gate.admit(principal.bucket, digest)
        if not admission.allowed:
            raise RateLimited(admission.retry_after)
        return Admitted(principal, admission.cached, digest)

    async def _admit_key(
        self, key_id: str, secret: str, by_address: str, digest_of: DigestOf | None
    ) -> Admitted:
        bucket = f"key:{key_id}"  # the key principal's (authenticator.key_principal)
        digest = response_name(bucket, digest_of(bucket)) if digest_of else None
        secret_hash = hash_secret(secret)
        try:
            admission = await self.gate.admit_key(key_id, secret_hash, digest)
        except CacheUnavailable:
            # Degraded: the database decides, and nothing is rate limited.
            record = await self.authenticator.load_key(key_id)
            return await self._checked(key_principal(record, secret, by_address), digest)
        if not _unknown(admission):
            return await self._key_verdict(admission, secret, by_address, digest, charged=False)
        # Not cached: the database is asked, at the sender's address's cost first, so that
        # made-up key ids cannot flood the database past the rate limit.
        await self._refuse(anonymous(by_address))
        record = await self.authenticator.load_key(key_id)
        if record is None:
            return Admitted(key_principal(None, secret, by_address))
        try:  # again, with the record cached now
            admission = await self.gate.admit_key(key_id, secret_hash, digest)
        except CacheUnavailable:
            return _admitted(key_principal(record, secret, by_address), digest)
        if _unknown(admission):  # cached and gone at once (Redis evicting under memory pressure)
            return _admitted(key_principal(record, secret, by_address), digest)
        return await self._key_verdict(admission, secret, by_address, digest, charged=True)

    async def _key_verdict(
        self, admission: KeyAdmission, secret: str, by_address: str, digest: str | None, *, charged: bool
    ) -> Admitted:
        """What Redis said of a cached key; ``charged``: the address paid for this request."""
        if admission.verdict is KeyVerdict.LIMITED:
            raise RateLimited(admission.retry_after)
        if admission.verdict is KeyVerdict.OK and admission.cached is not None:
            return Admitted(None, admission.cached)
        if admission.record is None:  # _unknown() sends those to the database
            raise RuntimeError("Redis judged an API key without its record")
        principal = key_principal(ApiKeyRecord.from_json(admission.record), secret, by_address)
        return _admitted(principal, digest) if charged else await self._checked(principal, digest)

    async def _checked(self, principal: Principal, digest: str | None) -> Admitted:
        return (
            await self._refuse(principal)
            if principal.refused is not None
            else Admitted(principal, None, digest)
        )

    async def _refuse(self, principal: Principal) -> Admitted:
        admission = await self.gate.admit(principal.bucket)
        if not admission.allowed:
            raise RateLimited(admission.retry_after)
        return Admitted(principal)


def _unknown(admission: KeyAdmission) -> bool:
    """Whether Redis holds nothing to judge the key by (the database must be asked)."""
    if admission.verdict is KeyVerdict.LIMITED or admission.cached is not None:
        return False
    return admission.verdict is KeyVerdict.MISS or admission.record is None


def _admitted(principal: Principal, digest: str | None) -> Admitted:
    """A principal whose request was paid for already."""
    return Admitted(principal, None, None if principal.refused is not None else digest)


def _bearer_key(credentials: Credentials) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed ``Authorization: Bearer polly_...``; None otherwise
    (the authenticator explains what is wrong with other headers)."""
    if credentials.bearer is None:
        return None
    scheme, token = credentials.bearer
    return parse_token(token) if scheme.lower() == "bearer" else None
