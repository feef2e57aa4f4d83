"""Casting and retracting votes, from GraphQL and from the poll message's buttons, by the same
rules: the poll open, the voter holding one of its allowed roles, at most maxChoices options.
The database decides (app/storage/ballots.py); the results document in Redis follows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from app.access.errors import Forbidden
from app.access.policy import READ_POLLS, WRITE_POLLS, allows, require_scope
from app.access.principal import Principal, PrincipalKind
from app.cache.poll_results import PollResultsCache
from app.errors import PollyError
from app.polls.errors import PollConflict, PollInputError, poll_not_found
from app.polls.record import PollRecord, Status, Visibility
from app.polls.service import Clock, utc_now
from app.storage.ballots import BallotStore, Cast, PollNotOpen, Results
from app.storage.polls import PollStore
from app.telemetry.metrics import VOTES

# A guild member's role ids, asked of Discord (GraphQL votes on role-restricted polls).
MemberRoles = Callable[[int, int], Awaitable[frozenset[int]]]
# Told of every vote that changed a ballot (live results).
VotesChanged = Callable[[PollRecord, Results], Awaitable[None]]


@dataclass(frozen=True)
class Voted:
    poll: PollRecord
    ballot: frozenset[int]
    results: Results
    changed: bool


def results_visible(poll: PollRecord, principal: Principal | None) -> bool:
    """Counts are shown while the poll runs (LIVE), once it closed, and always to managers."""
    if poll.results_visibility is Visibility.LIVE or poll.status is Status.CLOSED:
        return True
    return principal is not None and allows(principal, poll.guild_id, WRITE_POLLS)


class VoteService:
    def __init__(
        self,
        polls: PollStore,
        ballots: BallotStore,
        results: PollResultsCache | None,
        *,
        member_roles: MemberRoles | None = None,
        on_change: VotesChanged | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.polls = polls
        self.ballots = ballots
        self.cache = results
        self.member_roles = member_roles
        self.on_change = on_change
        self.clock = clock

    # -- GraphQL ---------------------------------------------------------------------------------

    async def cast(self, principal: Principal, poll_id: int, positions: Sequence[int]) -> Voted:
        return await _counted("api", self._cast(principal, poll_id, positions))

    async def _cast(self, principal: Principal, poll_id: int, positions: Sequence[int]) -> Voted:
        poll = await self._votable(principal, poll_id)
        chosen = self._positions(poll, positions)
        await self._check_roles(poll, int(principal.id), None)
        return await self._vote(poll, int(principal.id), lambda before: chosen)

    async def retract(self, principal: Principal, poll_id: int) -> Voted:
        return await _counted("api", self._retract(principal, poll_id))

    async def _retract(self, principal: Principal, poll_id: int) -> Voted:
        poll = await self._votable(principal, poll_id)
        await self._check_roles(poll, int(principal.id), None)
        return await self._vote(poll, int(principal.id), lambda before: frozenset())

    # -- buttons ---------------------------------------------------------------------------------

    async def click(self, poll: PollRecord, position: int, user_id: int, roles: frozenset[int]) -> Voted:
        """A button: single choice sets the choice; multiple choice toggles the option, refused
        past maxChoices."""
        return await _counted("button", self._click(poll, position, user_id, roles))

    async def _click(self, poll: PollRecord, position: int, user_id: int, roles: frozenset[int]) -> Voted:
        if not 0 <= position < len(poll.options):
            raise PollInputError("position", f"Poll {poll.id} has no option {position + 1}.")
        await self._check_roles(poll, user_id, roles)

        def toggle(before: frozenset[int]) -> frozenset[int]:
            if poll.max_choices == 1:
                return frozenset({position})
            after = before ^ {position}
            if len(after) > poll.max_choices:
                raise PollInputError(
                    "positions",
                    f"You may choose at most {poll.max_choices} options; unselect one to choose this one.",
                )
            return after

        return await self._vote(poll, user_id, toggle)

    # -- reads -----------------------------------------------------------------------------------

    async def results(self, poll_ids: Sequence[int]) -> dict[int, Results]:
        """From the Redis documents, misses from the polls' rows (and cached for the next)."""
        found = await self.cache.get_many(poll_ids) if self.cache is not None else {}
        missing = [poll_id for poll_id in poll_ids if poll_id not in found]
        if missing:
            loaded = await self.ballots.results(missing)
            found.update(loaded)
            if self.cache is not None:
                for results in loaded.values():
                    await self.cache.put(results)
        return found

    # -- helpers ---------------------------------------------------------------------------------

    async def _votable(self, principal: Principal, poll_id: int) -> PollRecord:
        require_scope(principal, READ_POLLS)
        if principal.kind is not PrincipalKind.USER:
            raise Forbidden("An API key never votes on anyone's behalf; people vote signed in with Discord.")
        poll = (await self.polls.get_many([poll_id])).get(poll_id)
        if poll is None or poll.deleted or not allows(principal, poll.guild_id, READ_POLLS):
            raise poll_not_found(poll_id)
        return poll

    @staticmethod
    def _positions(poll: PollRecord, positions: Sequence[int]) -> frozenset[int]:
        chosen = frozenset(positions)
        if len(chosen) != len(positions):
            raise PollInputError("positions", "positions names an option twice; name each once.")
        if not chosen:
            raise PollInputError("positions", "Choose at least one option; retractVote takes a vote back.")
        wrong = sorted(p for p in chosen if not 0 <= p < len(poll.options))
        if wrong:
            raise PollInputError(
                "positions",
                f"Poll {poll.id} has options 0 to {len(poll.options) - 1}; {wrong} are not among them.",
            )
        if len(chosen) > poll.max_choices:
            raise PollInputError("positions", f"Poll {poll.id} takes at most {poll.max_choices} choices.")
        return chosen

    async def _check_roles(self, poll: PollRecord, user_id: int, roles: frozenset[int] | None) -> None:
        if not poll.allowed_role_ids:
            return
        if roles is None:
            if self.member_roles is None:
                raise RuntimeError("votes on role-restricted polls need the voter's roles")
            roles = await self.member_roles(poll.guild_id, user_id)
        if not roles & set(poll.allowed_role_ids):
            names = ", ".join(f"<@&{role}>" for role in poll.allowed_role_ids)
            raise Forbidden(f"Only members with one of the roles {names} may vote in poll {poll.id}.")

    async def _vote(
        self, poll: PollRecord, user_id: int, change: Callable[[frozenset[int]], frozenset[int]]
    ) -> Voted:
        try:
            cast: Cast = await self.ballots.vote(poll.id, user_id, change, self.clock())
        except PollNotOpen as closed:
            if closed.status is None:
                raise poll_not_found(poll.id) from None
            state = "closed" if closed.status == Status.OPEN.value else closed.status  # past closesAt
            raise PollConflict(
                f"Poll {poll.id} is {state}; votes are taken only while it is open.",
                current_version=poll.version,
                status=closed.status,
            ) from None
        if cast.changed:
            if self.cache is not None:
                await self.cache.put(cast.results)
            if self.on_change is not None:
                await self.on_change(poll, cast.results)
        return Voted(poll, cast.after, cast.results, cast.changed)


async def _counted(source: str, vote: Coroutine[Any, Any, Voted]) -> Voted:
    try:
        voted = await vote
    except PollyError:
        VOTES.labels(source, "refused").inc()
        raise
    VOTES.labels(source, "recorded" if voted.changed else "unchanged").inc()
    return voted
