"""The per-request DataLoader of polls: every poll a request's resolvers ask for, in one query."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from strawberry.dataloader import DataLoader

from app.access.principal import Principal
from app.polls.errors import poll_not_found
from app.polls.record import PollRecord
from app.polls.service import PollService


class PollsLoader:
    def __init__(self, service: PollService, principal: Principal, on_read: Callable[[], None]) -> None:
        self._service = service
        self._principal = principal
        # Poll answers change with every vote and edit: the request's answer is not cached.
        self._on_read = on_read
        self._loader: DataLoader[int, PollRecord | None] = DataLoader(load_fn=self._load)

    async def poll(self, poll_id: int) -> PollRecord:
        """The poll, if it exists and the caller may read it; NOT_FOUND otherwise (the same
        answer either way, so nobody learns which ids exist)."""
        found = await self._loader.load(poll_id)
        if found is None:
            raise poll_not_found(poll_id)
        return found

    def prime(self, polls: Sequence[PollRecord]) -> None:
        for poll in polls:
            self._loader.prime(poll.id, poll)

    async def _load(self, poll_ids: list[int]) -> list[PollRecord | None]:
        self._on_read()
        readable = await self._service.readable(self._principal, poll_ids)
        return [readable.get(poll_id) for poll_id in poll_ids]
