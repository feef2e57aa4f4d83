"""Creating and changing polls, for the GraphQL mutations: access, the rules, then one
conditional write. The scheduler (app/polls/scheduler.py) does the Discord side."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from app.access.policy import READ_POLLS, WRITE_POLLS, allows, authorize, require_scope
from app.access.principal import Principal, PrincipalKind
from app.polls import rules
from app.polls.errors import PollConflict, PollInputError, poll_not_found
from app.polls.events import PollChange, PollEvents
from app.polls.record import OptionRecord, Pending, PollRecord, Status, Visibility
from app.polls.rules import PollDraft
from app.roles.errors import RolesError
from app.roles.service import RoleService
from app.roles.snapshot import GuildSnapshot
from app.storage.polls import PollStore, Refused

Clock = Callable[[], datetime]

# What may change once a poll is open: its text, and a later closing time.
OPEN_CHANGES = frozenset({"name", "question", "options", "closes_at"})
# GraphQL's names for the draft's fields, for errors.
FIELD_NAMES = {
    "channel_id": "channelId", "name": "name", "question": "question", "options": "options",
    "opens_at": "opensAt", "closes_at": "closesAt", "timezone": "timezone", "anonymous": "anonymous",
    "max_choices": "maxChoices", "results_visibility": "resultsVisibility", "ping_role_id": "pingRoleId",
    "ping_on_open": "pingOnOpen", "ping_on_close": "pingOnClose", "allowed_role_ids": "allowedRoleIds",
}  # fmt: skip
_NO_PROBLEM = {"problem_code": None, "problem_message": None, "problem_at": None}
# Problems that mean the poll's message is gone for good: it cannot be reopened.
GONE = frozenset({"CHANNEL_DELETED", "MESSAGE_DELETED"})


def utc_now() -> datetime:
    return datetime.now(UTC)


def creator(principal: Principal) -> str:
    return f"key:{principal.id}" if principal.kind is PrincipalKind.API_KEY else f"user:{principal.id}"


def _row_values(draft: PollDraft) -> dict[str, Any]:
    return {
        "channel_id": str(draft.channel_id),
        "name": draft.name,
        "question": draft.question,
        "opens_at": draft.opens_at,
        "closes_at": draft.closes_at,
        "timezone": draft.timezone,
        "anonymous": draft.anonymous,
        "max_choices": draft.max_choices,
        "results_visibility": draft.results_visibility.value,
        "ping_role_id": None if draft.ping_role_id is None else str(draft.ping_role_id),
        "ping_on_open": draft.ping_on_open,
        "ping_on_close": draft.ping_on_close,
        "allowed_role_ids": [str(role) for role in draft.allowed_role_ids],
    }


def _draft_of(poll: PollRecord) -> PollDraft:
    return PollDraft(
        channel_id=poll.channel_id,
        name=poll.name,
        question=poll.question,
        options=poll.options,
        opens_at=poll.opens_at,
        closes_at=poll.closes_at,
        timezone=poll.timezone,
        anonymous=poll.anonymous,
        max_choices=poll.max_choices,
        results_visibility=poll.results_visibility,
        ping_role_id=poll.ping_role_id,
        ping_on_open=poll.ping_on_open,
        ping_on_close=poll.ping_on_close,
        allowed_role_ids=poll.allowed_role_ids,
    )


def _conflict(poll: PollRecord, message: str) -> PollConflict:
    return PollConflict(
        f"{message} It is {poll.status.value} at version {poll.version}.",
        current_version=poll.version,
        status=poll.status.value,
    )


class PollService:
    def __init__(
        self, store: PollStore, roles: RoleService, clock: Clock = utc_now, events: PollEvents | None = None
    ) -> None:
        self.store = store
        self.roles = roles
        self.clock = clock
        self.events = events

    async def _announce(self, poll: PollRecord, change: PollChange) -> PollRecord:
        if self.events is not None:
            await self.events.changed(poll, change)
        return poll

    async def guild(self, guild_id: int) -> GuildSnapshot:
        """The guild's cached role data (filled from Discord only when nothing is cached)."""
        found = (await self.roles.read([guild_id], [])).guilds[guild_id]
        if isinstance(found, RolesError):
            raise found
        return found

    # -- mutations ------------------------------------------------------------------------------

    async def create(self, principal: Principal, guild_id: int, given: dict[str, Any]) -> PollRecord:
        authorize(principal, guild_id, WRITE_POLLS)
        now = self.clock()
        ping_role = given.get("ping_role_id")
        draft = PollDraft(
            channel_id=given["channel_id"],
            name=given["name"],
            question=given["question"],
            options=tuple(OptionRecord(i, t, e) for i, (t, e) in enumerate(given["options"])),
            opens_at=rules.aware(given.get("opens_at") or now, "opensAt"),
            closes_at=rules.aware(given["closes_at"], "closesAt"),
            timezone="UTC" if given.get("timezone") is None else given["timezone"],
            anonymous=bool(given.get("anonymous", False)),
            max_choices=1 if given.get("max_choices") is None else given["max_choices"],
            results_visibility=given.get("results_visibility") or Visibility.LIVE,
            ping_role_id=ping_role,
            ping_on_open=given["ping_on_open"]
            if given.get("ping_on_open") is not None
            else ping_role is not None,
            ping_on_close=bool(given.get("ping_on_close", False)),
            allowed_role_ids=tuple(given.get("allowed_role_ids") or ()),
        )
        draft = rules.checked(draft, now)
        rules.in_guild(draft, await self.guild(guild_id))
        values = {
            **_row_values(draft),
            "guild_id": str(guild_id),
            "status": Status.SCHEDULED.value,
            "created_by": creator(principal),
            "created_at": now,
            "updated_at": now,
            "version": 1,
            "pending": Pending.POST.value,
            "due_at": max(draft.opens_at, now),
            "attempts": 0,
            "posts": 0,
        }
        return await self._announce(await self.store.create(values, draft.options), PollChange.CREATED)

    async def update(
        self, principal: Principal, poll_id: int, expected_version: int, given: dict[str, Any]
    ) -> PollRecord:
        poll = await self._writable(principal, poll_id)
        if poll.status not in (Status.SCHEDULED, Status.OPEN):
            raise _conflict(poll, f"Poll {poll_id} can no longer be changed.")
        if poll.version != expected_version:
            raise _conflict(poll, f"Poll {poll_id} changed since version {expected_version}; read it again.")
        now = self.clock()
        posting = (
            poll.status is Status.SCHEDULED and poll.leased_until is not None and poll.leased_until > now
        )
        if posting:
            raise _conflict(poll, f"Poll {poll_id} is being posted right now; read it again in a moment.")
        if poll.status is Status.OPEN:
            self._open_changes(poll, given)
        draft = _draft_of(poll)
        changes = dict(given)
        if "options" in changes:
            changes["options"] = tuple(OptionRecord(i, t, e) for i, (t, e) in enumerate(changes["options"]))
        draft = rules.checked(replace(draft, **changes), now)
        if poll.status is Status.SCHEDULED:
            rules.in_guild(draft, await self.guild(poll.guild_id))
            work = {"pending": Pending.POST.value, "due_at": max(draft.opens_at, now)}
        else:
            work = {"pending": Pending.EDIT.value, "due_at": now}
        changed = await self.store.change(
            poll_id,
            {**_row_values(draft), **work},
            statuses=[poll.status],
            version=expected_version,
            options=draft.options if "options" in given else None,
            now=now,
            # A scheduled poll may be posted as it is now: a change must not race the post.
            unleased=poll.status is Status.SCHEDULED,
        )
        return await self._announce(
            self._done(poll_id, changed, "changed (it may be being posted: read it again)"),
            PollChange.UPDATED,
        )

    def _open_changes(self, poll: PollRecord, given: dict[str, Any]) -> None:
        for name in given:
            if name not in OPEN_CHANGES:
                field = FIELD_NAMES[name]
                raise PollInputError(
                    field,
                    f"{field} cannot change once the poll is open; only its text and a later closesAt can.",
                )
        if "options" in given and len(given["options"]) != len(poll.options):
            raise PollInputError(
                "options",
                "Options cannot be added or removed once the poll is open; only their text can change.",
            )
        closes_at = given.get("closes_at")
        if closes_at is not None and rules.aware(closes_at, "closesAt") < poll.closes_at:
            raise PollInputError(
                "closesAt", "An open poll's closesAt can only move later; use closePoll to end it now."
            )

    async def open_now(self, principal: Principal, poll_id: int) -> PollRecord:
        poll = await self._writable(principal, poll_id)
        now = self.clock()
        if poll.status is Status.SCHEDULED:
            rules.times(now, poll.closes_at, now)  # a minute to 30 days, counted from now
        changed = await self.store.change(
            poll_id,
            {"opens_at": now, "pending": Pending.POST.value, "due_at": now},
            statuses=[Status.SCHEDULED],
            now=now,
        )
        return await self._announce(
            self._done(poll_id, changed, "opened now: only a scheduled poll can be"), PollChange.UPDATED
        )

    async def close(self, principal: Principal, poll_id: int) -> PollRecord:
        await self._writable(principal, poll_id)
        now = self.clock()
        changed = await self.store.change(
            poll_id,
            {"status": Status.CLOSED.value, "closes_at": now, "pending": Pending.FINISH.value, "due_at": now},
            statuses=[Status.OPEN],
            now=now,
        )
        return await self._announce(
            self._done(poll_id, changed, "closed: only an open poll can be"), PollChange.CLOSED
        )

    async def reopen(self, principal: Principal, poll_id: int, closes_at: datetime) -> PollRecord:
        poll = await self._writable(principal, poll_id)
        now = self.clock()
        rules.aware(closes_at, "closesAt")
        if poll.problem is not None and poll.problem.code in GONE:
            raise _conflict(poll, f"Poll {poll_id} cannot be reopened: {poll.problem.message}")
        rules.times(now, closes_at, now)
        if poll.message_id is None:  # never posted: it is posted now, as if it opened now
            values = {"status": Status.SCHEDULED.value, "opens_at": now, "pending": Pending.POST.value}
        else:
            values = {"status": Status.OPEN.value, "pending": Pending.EDIT.value}
        changed = await self.store.change(
            poll_id,
            {**values, "closes_at": closes_at, "due_at": now, **_NO_PROBLEM},
            statuses=[Status.CLOSED],
            now=now,
        )
        return await self._announce(
            self._done(poll_id, changed, "reopened: only a closed poll can be"), PollChange.REOPENED
        )

    async def cancel(self, principal: Principal, poll_id: int) -> PollRecord:
        await self._writable(principal, poll_id)
        now = self.clock()
        # A poll still being posted may get its message any moment: FINISH is judged when due.
        changed = await self.store.change(
            poll_id,
            {"status": Status.CANCELLED.value, "pending": Pending.FINISH.value, "due_at": now},
            statuses=[Status.SCHEDULED, Status.OPEN],
            now=now,
        )
        return await self._announce(
            self._done(poll_id, changed, "cancelled: only a scheduled or open poll can be"),
            PollChange.CANCELLED,
        )

    async def delete(self, principal: Principal, poll_id: int, delete_message: bool) -> PollRecord:
        await self._writable(principal, poll_id)
        now = self.clock()
        changed = await self.store.change(
            poll_id,
            {
                "deleted_at": now,
                "pending": Pending.DELETE.value if delete_message else None,
                "due_at": now if delete_message else None,
            },
            statuses=list(Status),
            now=now,
        )
        return await self._announce(self._done(poll_id, changed, "deleted"), PollChange.DELETED)

    # -- helpers --------------------------------------------------------------------------------

    async def readable(self, principal: Principal, poll_ids: Iterable[int]) -> dict[int, PollRecord]:
        """The polls among ``poll_ids`` that exist and that ``principal`` may read. Who may
        read no poll at all is told so first (UNAUTHENTICATED, or FORBIDDEN naming the scope),
        the same for every id."""
        require_scope(principal, READ_POLLS)
        polls = await self.store.get_many(poll_ids)
        return {
            poll_id: poll
            for poll_id, poll in polls.items()
            if not poll.deleted and allows(principal, poll.guild_id, READ_POLLS)
        }

    async def _writable(self, principal: Principal, poll_id: int) -> PollRecord:
        require_scope(principal, WRITE_POLLS)  # before the poll: the same answer for every id
        poll = (await self.store.get_many([poll_id])).get(poll_id)
        if (
            poll is None
            or poll.deleted
            or not (
                allows(principal, poll.guild_id, READ_POLLS) or allows(principal, poll.guild_id, WRITE_POLLS)
            )
        ):
            raise poll_not_found(poll_id)
        authorize(principal, poll.guild_id, WRITE_POLLS)
        return poll

    @staticmethod
    def _done(poll_id: int, changed: PollRecord | Refused, verb: str) -> PollRecord:
        if isinstance(changed, PollRecord):
            return changed
        if changed.current is None:
            raise poll_not_found(poll_id)
        raise _conflict(changed.current, f"Poll {poll_id} could not be {verb}.")
