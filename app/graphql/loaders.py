"""The per-request DataLoader: every read of a request's resolvers in one batch, one MGET."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from strawberry.dataloader import DataLoader

from app.access.policy import READ_ROLES, authorize
from app.access.principal import Principal
from app.roles.errors import InvalidInput, RolesError
from app.roles.pingability import Validation
from app.roles.service import RoleService
from app.roles.snapshot import GuildSnapshot, Stale


@dataclass(frozen=True, slots=True)
class GuildKey:
    guild_id: int


@dataclass(frozen=True, slots=True)
class ValidationKey:
    guild_id: int
    role_id: int


Key = GuildKey | ValidationKey
Loaded = GuildSnapshot | Validation


class RolesLoader:
    def __init__(
        self,
        service: RoleService,
        versions: dict[int, int],
        stale: dict[int, Stale],
        *,
        max_guilds: int,
        principal: Principal,
    ) -> None:
        self._service = service
        self._principal = principal
        self._versions = versions
        self._stale = stale
        self._max_guilds = max_guilds
        self._guilds: set[int] = set()
        self._loader: DataLoader[Key, Loaded] = DataLoader(load_fn=self._load)

    def _admit(self, guild_id: int) -> None:
        """Only guilds the caller may read, and a bounded number of them: each unknown one costs
        Discord calls."""
        authorize(self._principal, guild_id, READ_ROLES)
        self._guilds.add(guild_id)
        if len(self._guilds) > self._max_guilds:
            raise InvalidInput(
                f"A request may read at most {self._max_guilds} guilds; split it into several requests."
            )

    async def guild(self, guild_id: int) -> GuildSnapshot:
        self._admit(guild_id)
        snapshot = await self._loader.load(GuildKey(guild_id))
        if not isinstance(snapshot, GuildSnapshot):
            raise TypeError("the loader answered a guild key with something else")
        self._used(guild_id, snapshot.version, snapshot.stale)
        return snapshot

    async def validations(self, guild_id: int, role_ids: Sequence[int]) -> list[Validation]:
        self._admit(guild_id)
        loaded = await self._loader.load_many([ValidationKey(guild_id, role_id) for role_id in role_ids])
        validations = [v for v in loaded if isinstance(v, Validation)]
        for validation in validations:
            self._used(guild_id, validation.version, validation.stale)
        return validations

    def _used(self, guild_id: int, version: int, stale: Stale | None) -> None:
        self._versions[guild_id] = version
        if stale is not None:
            self._stale[guild_id] = stale

    async def _load(self, keys: list[Key]) -> Sequence[Loaded | RolesError]:
        guild_ids = [key.guild_id for key in keys if isinstance(key, GuildKey)]
        pairs = [(key.guild_id, key.role_id) for key in keys if isinstance(key, ValidationKey)]
        results = await self._service.read(guild_ids, pairs)
        return [
            results.guilds[key.guild_id]
            if isinstance(key, GuildKey)
            else results.validations[(key.guild_id, key.role_id)]
            for key in keys
        ]
