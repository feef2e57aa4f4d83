"""The per-request DataLoader of polls: every poll a request's resolvers ask for, in one query."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from strawberry.dataloader import DataLoader

from app.access.principal import Principal
from app.polls.errors import poll_not_found
from app.polls.record import PollRecord
from app.polls.service import PollService
from app.polls.votes import VoteService
from app.storage.ballots import Results


class PollsLoader:
    def __init__(
        self,
        service: PollService,
        principal: Principal,
        on_read: Callable[[], None],
        votes: VoteService | None = None,
    ) -> None:
        self._service = service
        self._principal = principal
        self._votes = votes
        # Poll answers change with every vote and edit: the request's answer is not cached.
        self._on_read = on_read
        self._loader: DataLoader[int, PollRecord | None] = DataLoader(load_fn=self._load)
        self._results: DataLoader[int, Results | None] = DataLoader(load_fn=self._load_results)
        self._ballots: DataLoader[int, frozenset[int] | None] = DataLoader(load_fn=self._load_ballots)

    @property
    def votes(self) -> VoteService:
        if self._votes is None:
            raise RuntimeError("this request context serves no votes")
        return self._votes

    async def results(self, poll_id: int) -> Results | None:
        """The poll's results: one MGET of the Redis documents for every poll of the request."""
        return await self._results.load(poll_id)

    async def ballot(self, poll_id: int, user_id: int) -> frozenset[int] | None:
        """What the signed-in caller chose in the poll: one query for every poll of the request."""
        if str(user_id) != self._principal.id:
            raise ValueError("a request reads its own caller's ballots only")
        return await self._ballots.load(poll_id)

    async def _load_results(self, poll_ids: list[int]) -> list[Results | None]:
        found = await self.votes.results(poll_ids)
        return [found.get(poll_id) for poll_id in poll_ids]

    async def _load_ballots(self, poll_ids: list[int]) -> list[frozenset[int] | None]:
        found = await self.votes.ballots.ballots(poll_ids, int(self._principal.id))
        return [found.get(poll_id) for poll_id in poll_ids]

    async def poll(self, poll_id: int) -> PollRecord:
        """The poll, if it exists and the caller may read it; NOT_FOUND otherwise (the same
        answer either way, so nobody learns which ids exist)."""
        found = await self._loader.load(poll_id)
        if found is None:
            raise poll_not_found(poll_id)
        return found

    async def poll_or_none(self, poll_id: int) -> PollRecord | None:
        """The poll, or None when it does not exist (any more) or may not be read."""
        return await self._loader.load(poll_id)

    def prime_results(self, poll_id: int, results: Results | None) -> None:
        self._results.prime(poll_id, results)

    def prime(self, polls: Sequence[PollRecord]) -> None:
        for poll in polls:
            self._loader.prime(poll.id, poll)

    async def _load(self, poll_ids: list[int]) -> list[PollRecord | None]:
        self._on_read()
        readable = await self._service.readable(self._principal, poll_ids)
        return [readable.get(poll_id) for poll_id in poll_ids]
