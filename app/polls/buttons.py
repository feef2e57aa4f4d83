"""Votes from the poll message's buttons: a click arrives on the bot's gateway as an
interaction, is recorded by the same rules as a GraphQL vote, and is answered within Discord's
three seconds with a message only the voter sees."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from app.cache.interactions import InteractionLog
from app.discord.client import DiscordRest, DiscordRestError
from app.errors import PollyError
from app.polls.errors import poll_not_found
from app.polls.record import PollRecord
from app.polls.votes import Voted, VoteService
from app.storage.database import DatabaseError
from app.storage.polls import PollStore

log = logging.getLogger(__name__)

CHANNEL_MESSAGE = 4
DEFERRED_CHANNEL_MESSAGE = 5
EPHEMERAL = 1 << 6
UNKNOWN_INTERACTION = 10062


@dataclass(frozen=True)
class Click:
    interaction_id: int
    token: str
    custom_id: str
    user_id: int
    roles: frozenset[int]
    application_id: int = 0


def parse_custom_id(custom_id: str) -> tuple[int, int] | None:
    """(poll id, option position) of one of our buttons; None for anyone else's."""
    kind, _, rest = custom_id.partition(":")
    poll, _, position = rest.partition(":")
    if kind != "poll" or not (poll.isdigit() and position.isdigit()) or len(poll) > 19:
        return None
    return int(poll), int(position)


def confirmation(voted: Voted) -> str:
    poll = voted.poll
    chosen = [o.text for o in poll.options if o.position in voted.ballot]
    if not chosen:
        return f"You have no vote in **{poll.name}** now. Click an option to vote."
    if poll.max_choices == 1:
        return f"You voted **{chosen[0]}** in **{poll.name}**. Click another option to change your vote."
    listed = ", ".join(f"**{text}**" for text in chosen)
    return (
        f"Your choices in **{poll.name}**: {listed} (up to {poll.max_choices}). Click an option again to"
        " remove it."
    )


class ButtonVotes:
    def __init__(
        self,
        votes: VoteService,
        polls: PollStore,
        discord: DiscordRest,
        seen: InteractionLog,
        *,
        defer_after: float = 1.0,
    ) -> None:
        self.votes = votes
        self.polls = polls
        self.discord = discord
        self.seen = seen
        # A vote that takes longer than this (a burst queued on one poll's row) is acknowledged
        # first, inside Discord's 3 seconds, and the answer edited in when the vote is done.
        self.defer_after = defer_after

    async def handle(self, click: Click) -> None:
        target = parse_custom_id(click.custom_id)
        if target is None:
            return  # not one of ours
        if not await self.seen.first(click.interaction_id):
            log.info("Interaction %s was delivered again; it counted once.", click.interaction_id)
            return
        recording = asyncio.ensure_future(self._record(click, *target))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.defer_after):
                await asyncio.shield(recording)
        if recording.done():
            await self._answer(click, recording.result())
            return
        deferred = await self._acknowledge(click)
        answer = await recording
        if deferred:
            await self._edit_answer(click, answer)

    async def _record(self, click: Click, poll_id: int, position: int) -> str:
        """The vote, recorded; what to tell the voter."""
        try:
            poll = await self._poll(poll_id)
            voted = await self.votes.click(poll, position, click.user_id, click.roles)
        except PollyError as refused:
            return refused.message
        except DatabaseError as error:
            log.warning("Could not record interaction %s's vote: %s", click.interaction_id, error)
            return "Your vote could not be recorded just now; click again in a moment."
        return confirmation(voted)

    async def _poll(self, poll_id: int) -> PollRecord:
        poll = (await self.polls.get_many([poll_id])).get(poll_id)
        if poll is None or poll.deleted:
            raise poll_not_found(poll_id)
        return poll

    async def _answer(self, click: Click, content: str) -> None:
        payload = {
            "type": CHANNEL_MESSAGE,
            "data": {"content": content, "flags": EPHEMERAL, "allowed_mentions": {"parse": []}},
        }
        await self._respond(click, payload)

    async def _acknowledge(self, click: Click) -> bool:
        """Discord's "thinking…", seen by the voter only; whether Discord took it."""
        return await self._respond(click, {"type": DEFERRED_CHANNEL_MESSAGE, "data": {"flags": EPHEMERAL}})

    async def _respond(self, click: Click, payload: dict[str, object]) -> bool:
        try:
            await self.discord.interaction_callback(click.interaction_id, click.token, payload)
        except DiscordRestError as error:
            if error.code == UNKNOWN_INTERACTION:
                # Past Discord's 3 seconds: the vote stands; the voter saw "interaction failed".
                log.warning(
                    "Interaction %s was answered too late; its vote is recorded.", click.interaction_id
                )
            else:
                log.warning("Could not answer interaction %s: %s", click.interaction_id, error)
            return False
        return True

    async def _edit_answer(self, click: Click, content: str) -> None:
        try:
            await self.discord.edit_interaction_answer(
                click.application_id, click.token, {"content": content, "allowed_mentions": {"parse": []}}
            )
        except DiscordRestError as error:
            log.warning("Could not tell interaction %s's voter the outcome: %s", click.interaction_id, error)
