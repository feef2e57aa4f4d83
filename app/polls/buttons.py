"""Votes from the poll message's buttons: a click arrives on the bot's gateway as an
interaction, is recorded by the same rules as a GraphQL vote, and is answered within Discord's
three seconds with a message only the voter sees."""

from __future__ import annotations

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
EPHEMERAL = 1 << 6
UNKNOWN_INTERACTION = 10062


@dataclass(frozen=True)
class Click:
    interaction_id: int
    token: str
    custom_id: str
    user_id: int
    roles: frozenset[int]


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
        self, votes: VoteService, polls: PollStore, discord: DiscordRest, seen: InteractionLog
    ) -> None:
        self.votes = votes
        self.polls = polls
        self.discord = discord
        self.seen = seen

    async def handle(self, click: Click) -> None:
        target = parse_custom_id(click.custom_id)
        if target is None:
            return  # not one of ours
        if not await self.seen.first(click.interaction_id):
            log.info("Interaction %s was delivered again; it counted once.", click.interaction_id)
            return
        poll_id, position = target
        try:
            poll = await self._poll(poll_id)
            voted = await self.votes.click(poll, position, click.user_id, click.roles)
            answer = confirmation(voted)
        except PollyError as refused:
            answer = refused.message
        except DatabaseError as error:
            log.warning("Could not record interaction %s's vote: %s", click.interaction_id, error)
            answer = "Your vote could not be recorded just now; click again in a moment."
        await self._answer(click, answer)

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
