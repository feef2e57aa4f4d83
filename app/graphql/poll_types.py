"""GraphQL types of the polls API."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import TYPE_CHECKING, Any

import strawberry
from strawberry.types import Info

from app.access.errors import Forbidden
from app.access.policy import WRITE_POLLS, authorize
from app.access.principal import PrincipalKind
from app.polls.errors import PollInputError
from app.polls.record import PollRecord, Status, Visibility
from app.polls.votes import results_visible

if TYPE_CHECKING:
    from app.graphql.poll_loader import PollsLoader

MAX_POLL_ID = 2**63 - 1  # a BIGINT


def poll_id(value: str, argument: str = "id") -> int:
    text = str(value)
    if not (0 < len(text) <= 19 and text.isascii() and text.isdigit()) or int(text) > MAX_POLL_ID:
        raise PollInputError(argument, f"{argument} must be a poll id (digits), not {text[:40]!r}.")
    return int(text)


def cursor_of(poll: PollRecord) -> str:
    return base64.urlsafe_b64encode(f"poll:{poll.id}".encode()).decode()


def after_id(cursor: str) -> int:
    try:
        kind, _, number = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        kind, number = "", ""
    if kind != "poll" or not (number.isascii() and number.isdigit()) or len(number) > 19:
        raise PollInputError("after", "after must be an endCursor from an earlier page of polls.")
    return int(number)


PollStatus = strawberry.enum(Status, name="PollStatus", description="Where a poll is in its life.")
ResultsVisibility = strawberry.enum(
    Visibility,
    name="ResultsVisibility",
    description="LIVE: counts shown while the poll runs; AFTER_CLOSE: only managers see them before it"
    " closes.",
)


@strawberry.type(description="One answer of a poll.")
class PollOption:
    position: int = strawberry.field(description="0-based; buttons and votes name options by it.")
    text: str
    emoji: str | None


@strawberry.type(description="What went wrong on Discord's side, and when.")
class PollProblem:
    code: str = strawberry.field(
        description="MISSING_PERMISSIONS, DISCORD_UNAVAILABLE, DISCORD_REFUSED, PING_ROLE_INVALID,"
        " PING_ROLE_UNCHECKED, CHANNEL_DELETED or MESSAGE_DELETED."
    )
    message: str
    at: datetime


@strawberry.type(description="Votes for one option.")
class OptionResult:
    position: int
    votes: int


@strawberry.type(description="A poll's results: votes per option and how many people voted.")
class PollResults:
    options: list[OptionResult]
    voters: int = strawberry.field(description="People with a ballot (a ballot may hold several options).")
    version: int = strawberry.field(description="Grows with every vote.")


@strawberry.type(description="Someone who voted, and when their ballot last changed.")
class PollVoter:
    user_id: strawberry.ID
    voted_at: datetime


@strawberry.type(description="A page of a poll's voters, first ballots first.")
class PollVoterConnection:
    nodes: list[PollVoter]
    page_info: PageInfo


def voter_cursor(ballot_id: int) -> str:
    return base64.urlsafe_b64encode(f"ballot:{ballot_id}".encode()).decode()


def after_ballot(cursor: str) -> int:
    try:
        kind, _, number = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        kind, number = "", ""
    if kind != "ballot" or not (number.isascii() and number.isdigit()) or len(number) > 19:
        raise PollInputError("after", "after must be an endCursor from an earlier page of voters.")
    return int(number)


@strawberry.type(description="A poll: its question and options, when it runs, and whom it pings.")
class Poll:
    record: strawberry.Private[PollRecord]
    # Where its results and ballot are read: the request's loader, or, for a subscription's
    # message, the loader of that message (a loader remembers what it read).
    loader: strawberry.Private[Any]  # PollsLoader | None (Strawberry must resolve the annotation)
    id: strawberry.ID
    guild_id: strawberry.ID
    channel_id: strawberry.ID
    name: str
    question: str
    options: list[PollOption]
    status: PollStatus  # type: ignore[valid-type]
    opens_at: datetime = strawberry.field(description="In UTC; show it in `timezone` or the reader's own.")
    closes_at: datetime
    timezone: str = strawberry.field(description="The IANA time zone the poll was written in.")
    anonymous: bool
    max_choices: int
    results_visibility: ResultsVisibility  # type: ignore[valid-type]
    ping_role_id: strawberry.ID | None
    ping_on_open: bool
    ping_on_close: bool
    allowed_role_ids: list[strawberry.ID] = strawberry.field(
        description="Roles a voter must hold one of; empty: anyone who can see the poll."
    )
    message_id: strawberry.ID | None
    message_url: str | None
    created_by: str = strawberry.field(description="user:<discord id> or key:<api key id>.")
    version: int = strawberry.field(description="Grows with every change; updatePoll's expectedVersion.")
    problem: PollProblem | None = strawberry.field(description="Null while all is well on Discord's side.")

    @strawberry.field(
        description="Votes per option and voters; null while the results are hidden (AFTER_CLOSE: until"
        " the poll closes, except for managers)."
    )
    async def results(self, info: Info[Any, None]) -> PollResults | None:
        if not results_visible(self.record, info.context.principal):
            return None
        found = await self._loader(info).results(self.record.id)
        if found is None:
            return None
        return PollResults(
            options=[OptionResult(position=p, votes=v) for p, v in enumerate(found.counts)],
            voters=found.voters,
            version=found.version,
        )

    @strawberry.field(
        description="The options the signed-in caller chose; null without a ballot (or for keys)."
    )
    async def my_ballot(self, info: Info[Any, None]) -> list[int] | None:
        principal = info.context.principal
        if principal.kind is not PrincipalKind.USER:
            return None
        chosen = await self._loader(info).ballot(self.record.id, int(principal.id))
        return None if chosen is None else sorted(chosen)

    @strawberry.field(
        description="Who voted (for one option, if given), for managers; never for an anonymous poll."
    )
    async def voters(
        self, info: Info[Any, None], position: int | None = None, first: int = 20, after: str | None = None
    ) -> PollVoterConnection:
        poll = self.record
        authorize(info.context.principal, poll.guild_id, WRITE_POLLS)
        if poll.anonymous:
            raise Forbidden(f"Poll {poll.id} is anonymous: who voted is never shown, to anyone.")
        if not 1 <= first <= 100:
            raise PollInputError("first", f"first must be between 1 and 100; got {first}.")
        if position is not None and not 0 <= position < len(poll.options):
            raise PollInputError("position", f"Poll {poll.id} has no option {position}.")
        start = None if after is None else after_ballot(after)
        page = await self._loader(info).votes.ballots.voters(
            poll.id, position, limit=first + 1, after_ballot=start
        )
        shown = page[:first]
        return PollVoterConnection(
            nodes=[PollVoter(user_id=strawberry.ID(str(user)), voted_at=at) for _, user, at in shown],
            page_info=PageInfo(
                end_cursor=voter_cursor(shown[-1][0]) if shown else None, has_next_page=len(page) > first
            ),
        )

    def _loader(self, info: Info[Any, None]) -> PollsLoader:
        loader: PollsLoader = self.loader if self.loader is not None else info.context.poll_loader
        return loader

    @classmethod
    def of(cls, poll: PollRecord, loader: PollsLoader | None = None) -> Poll:
        return cls(
            record=poll,
            loader=loader,
            id=strawberry.ID(str(poll.id)),
            guild_id=strawberry.ID(str(poll.guild_id)),
            channel_id=strawberry.ID(str(poll.channel_id)),
            name=poll.name,
            question=poll.question,
            options=[PollOption(position=o.position, text=o.text, emoji=o.emoji) for o in poll.options],
            status=poll.status,
            opens_at=poll.opens_at,
            closes_at=poll.closes_at,
            timezone=poll.timezone,
            anonymous=poll.anonymous,
            max_choices=poll.max_choices,
            results_visibility=poll.results_visibility,
            ping_role_id=None if poll.ping_role_id is None else strawberry.ID(str(poll.ping_role_id)),
            ping_on_open=poll.ping_on_open,
            ping_on_close=poll.ping_on_close,
            allowed_role_ids=[strawberry.ID(str(role)) for role in poll.allowed_role_ids],
            message_id=None if poll.message_id is None else strawberry.ID(str(poll.message_id)),
            message_url=poll.message_url,
            created_by=poll.created_by,
            version=poll.version,
            problem=None
            if poll.problem is None
            else PollProblem(code=poll.problem.code, message=poll.problem.message, at=poll.problem.at),
        )


@strawberry.type
class PageInfo:
    end_cursor: str | None = strawberry.field(description="Pass it as `after` for the next page.")
    has_next_page: bool


@strawberry.type(description="A page of polls, newest first.")
class PollConnection:
    nodes: list[Poll]
    page_info: PageInfo


@strawberry.input(description="An answer: its text (a button's label, up to 80 characters) and an emoji.")
class PollOptionInput:
    text: str
    emoji: str | None = None


@strawberry.input
class CreatePollInput:
    guild_id: strawberry.ID
    channel_id: strawberry.ID = strawberry.field(
        description="Where the poll is posted; the bot must send there."
    )
    name: str = strawberry.field(description="1-200 characters.")
    question: str = strawberry.field(description="1-2,000 characters.")
    options: list[PollOptionInput] = strawberry.field(description="2-10, unique ignoring case.")
    closes_at: datetime = strawberry.field(description="With an offset; 1 minute to 30 days after opensAt.")
    opens_at: datetime | None = strawberry.field(default=None, description="With an offset; default: now.")
    timezone: str = strawberry.field(default="UTC", description="An IANA time zone, e.g. Europe/Berlin.")
    anonymous: bool = False
    max_choices: int = strawberry.field(default=1, description="1 up to the number of options.")
    results_visibility: ResultsVisibility = Visibility.LIVE  # type: ignore[valid-type]
    ping_role_id: strawberry.ID | None = strawberry.field(
        default=None, description="The one role the poll may ping; it must be pingable in the channel."
    )
    ping_on_open: bool | None = strawberry.field(
        default=None, description="Default: true when pingRoleId is set."
    )
    ping_on_close: bool = False
    allowed_role_ids: list[strawberry.ID] = strawberry.field(default_factory=list)


@strawberry.input(description="Fields left out stay as they are. Once open, only text and a later closesAt.")
class UpdatePollInput:
    channel_id: strawberry.ID | None = strawberry.UNSET
    name: str | None = strawberry.UNSET
    question: str | None = strawberry.UNSET
    options: list[PollOptionInput] | None = strawberry.UNSET
    opens_at: datetime | None = strawberry.UNSET
    closes_at: datetime | None = strawberry.UNSET
    timezone: str | None = strawberry.UNSET
    anonymous: bool | None = strawberry.UNSET
    max_choices: int | None = strawberry.UNSET
    results_visibility: ResultsVisibility | None = strawberry.UNSET  # type: ignore[valid-type]
    ping_role_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="null removes the ping."
    )
    ping_on_open: bool | None = strawberry.UNSET
    ping_on_close: bool | None = strawberry.UNSET
    allowed_role_ids: list[strawberry.ID] | None = strawberry.UNSET
