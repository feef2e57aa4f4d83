"""The polls API's queries and mutations: inputs read into plain values, access and rules in
app/polls/service.py, reads through the request's PollsLoader."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.types import Info

from app.access.policy import READ_POLLS, authorize
from app.graphql.context import RequestContext
from app.graphql.poll_types import (
    CreatePollInput,
    PageInfo,
    Poll,
    PollConnection,
    PollOptionInput,
    PollStatus,
    UpdatePollInput,
    after_id,
    cursor_of,
    poll_id,
)
from app.graphql.types import snowflake
from app.polls.errors import PollInputError
from app.polls.service import FIELD_NAMES, PollService

Context = Info[RequestContext, None]


def poll_id_of(value: strawberry.ID) -> int:
    """The mutations' own argument is named pollId; it is reported as such."""
    return poll_id(value, "pollId")


MAX_PAGE = 100


def _service(info: Context) -> PollService:
    service = info.context.polls
    if service is None:
        raise RuntimeError("this request context serves no polls")
    return service


def _options(given: list[PollOptionInput]) -> list[tuple[str, str | None]]:
    return [(option.text, option.emoji) for option in given]


def _roles(given: list[strawberry.ID], field: str) -> list[int]:
    return [snowflake(role, f"{field}[{index}]") for index, role in enumerate(given)]


def _create_fields(given: CreatePollInput) -> dict[str, Any]:
    return {
        "channel_id": snowflake(given.channel_id, "channelId"),
        "name": given.name,
        "question": given.question,
        "options": _options(given.options),
        "opens_at": given.opens_at,
        "closes_at": given.closes_at,
        "timezone": given.timezone,
        "anonymous": given.anonymous,
        "max_choices": given.max_choices,
        "results_visibility": given.results_visibility,
        "ping_role_id": None if given.ping_role_id is None else snowflake(given.ping_role_id, "pingRoleId"),
        "ping_on_open": given.ping_on_open,
        "ping_on_close": given.ping_on_close,
        "allowed_role_ids": _roles(given.allowed_role_ids, "allowedRoleIds"),
    }


# Fields of UpdatePollInput that may be null (the rest must be left out rather than nulled).
_NULLABLE = {"ping_role_id"}


def _update_fields(given: UpdatePollInput) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, value in vars(given).items():
        if value is strawberry.UNSET:
            continue
        if value is None and name not in _NULLABLE:
            field = FIELD_NAMES[name]
            raise PollInputError(field, f"{field} cannot be null; leave it out to keep it as it is.")
        fields[name] = value
    if "channel_id" in fields:
        fields["channel_id"] = snowflake(fields["channel_id"], "channelId")
    if fields.get("ping_role_id") is not None:
        fields["ping_role_id"] = snowflake(fields["ping_role_id"], "pingRoleId")
    if "options" in fields:
        fields["options"] = _options(fields["options"])
    if "allowed_role_ids" in fields:
        fields["allowed_role_ids"] = tuple(_roles(fields["allowed_role_ids"], "allowedRoleIds"))
    return fields


async def poll(info: Context, id: strawberry.ID) -> Poll:
    return Poll.of(await info.context.poll_loader.poll(poll_id(id)))


async def polls(
    info: Context,
    guild_id: strawberry.ID,
    status: PollStatus | None = None,  # type: ignore[valid-type]
    first: int = 20,
    after: str | None = None,
) -> PollConnection:
    guild = snowflake(guild_id, "guildId")
    authorize(info.context.principal, guild, READ_POLLS)
    if not 1 <= first <= MAX_PAGE:
        raise PollInputError("first", f"first must be between 1 and {MAX_PAGE}; got {first}.")
    before = None if after is None else after_id(after)
    info.context.uncacheable = True
    found = await _service(info).store.page(guild, status=status, limit=first + 1, before_id=before)
    page = found[:first]
    info.context.poll_loader.prime(page)
    return PollConnection(
        nodes=[Poll.of(p) for p in page],
        page_info=PageInfo(
            end_cursor=cursor_of(page[-1]) if page else None, has_next_page=len(found) > first
        ),
    )


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Create a poll; it opens at opensAt (default: now) and closes at closesAt."
    )
    async def create_poll(self, info: Context, input: CreatePollInput) -> Poll:
        guild = snowflake(input.guild_id, "guildId")
        return Poll.of(await _service(info).create(info.context.principal, guild, _create_fields(input)))

    @strawberry.mutation(
        description="Change a poll still at expectedVersion: anything while scheduled; once open, only its"
        " text and a later closesAt."
    )
    async def update_poll(
        self,
        info: Context,
        id: strawberry.ID,
        expected_version: int,
        input: UpdatePollInput,
    ) -> Poll:
        changed = await _service(info).update(
            info.context.principal, poll_id(id), expected_version, _update_fields(input)
        )
        return Poll.of(changed)

    @strawberry.mutation(description="Open a scheduled poll now (posted within a second).")
    async def open_poll_now(self, info: Context, id: strawberry.ID) -> Poll:
        return Poll.of(await _service(info).open_now(info.context.principal, poll_id(id)))

    @strawberry.mutation(description="Close an open poll now; its message shows the final results.")
    async def close_poll(self, info: Context, id: strawberry.ID) -> Poll:
        return Poll.of(await _service(info).close(info.context.principal, poll_id(id)))

    @strawberry.mutation(description="Open a closed poll again until closesAt, which must be in the future.")
    async def reopen_poll(self, info: Context, id: strawberry.ID, closes_at: datetime) -> Poll:
        return Poll.of(await _service(info).reopen(info.context.principal, poll_id(id), closes_at))

    @strawberry.mutation(
        description="Cancel a scheduled or open poll; a posted message says it was cancelled."
    )
    async def cancel_poll(self, info: Context, id: strawberry.ID) -> Poll:
        return Poll.of(await _service(info).cancel(info.context.principal, poll_id(id)))

    @strawberry.mutation(
        description="Vote in an open poll as the signed-in user: `positions` replace any earlier vote"
        " (at most maxChoices; one of allowedRoleIds held, when set). API keys never vote."
    )
    async def cast_vote(self, info: Context, poll_id: strawberry.ID, positions: list[int]) -> Poll:
        voted = await info.context.poll_loader.votes.cast(
            info.context.principal, poll_id_of(poll_id), positions
        )
        return Poll.of(voted.poll)

    @strawberry.mutation(description="Take the signed-in user's vote back, while the poll is open.")
    async def retract_vote(self, info: Context, poll_id: strawberry.ID) -> Poll:
        voted = await info.context.poll_loader.votes.retract(info.context.principal, poll_id_of(poll_id))
        return Poll.of(voted.poll)

    @strawberry.mutation(
        description="Delete a poll (its data is kept, hidden); deleteMessage also deletes its Discord"
        " message."
    )
    async def delete_poll(
        self,
        info: Context,
        id: strawberry.ID,
        delete_message: bool = True,
    ) -> bool:
        await _service(info).delete(info.context.principal, poll_id(id), delete_message)
        return True
