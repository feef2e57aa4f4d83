"""A running API with a key that may run polls, and ``polly bot`` processes on its database:
what the poll tests drive (fixtures ``stack`` and ``polls`` in conftest.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import (
    RunningApi,
    RunningBot,
    SandboxHttp,
    channel_id,
    guild_id,
    role_id,
    wait_until,
)

POLL_FIELDS = """id guildId channelId name question options { position text emoji } status opensAt closesAt
timezone anonymous maxChoices resultsVisibility pingRoleId pingOnOpen pingOnClose allowedRoleIds messageId
messageUrl createdBy version problem { code message at }"""

CREATE = f"mutation($input: CreatePollInput!) {{ createPoll(input: $input) {{ {POLL_FIELDS} }} }}"
GET = f"query($id: ID!) {{ poll(id: $id) {{ {POLL_FIELDS} }} }}"


def iso(moment: datetime) -> str:
    return moment.isoformat()


class Polls:
    """A running API, a running bot sharing its database, and a key that may run polls."""

    def __init__(
        self,
        api: RunningApi,
        http: SandboxHttp,
        key: str,
        start_bot: Callable[[], Awaitable[RunningBot]],
    ) -> None:
        self.api = api
        self.http = http
        self.start_bot = start_bot
        self.auth = {"Authorization": f"Bearer {key}"}
        fixture = api.sandbox.fixture
        self.guild = guild_id(fixture, "Polly Playground")
        self.channel = channel_id(fixture, "Polly Playground", "polls")
        self.role = role_id(fixture, "Polly Playground", "Event Pings")

    async def run(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        status, body = await self.api.query(query, variables, headers=self.auth)
        assert status == 200, body
        return body

    def draft(self, **changes: Any) -> dict[str, Any]:
        now = datetime.now(UTC)
        draft = {
            "guildId": str(self.guild),
            "channelId": str(self.channel),
            "name": "Lunch",
            "question": "Where do we eat?",
            "options": [{"text": "Pizza", "emoji": "🍕"}, {"text": "Sushi"}],
            "closesAt": iso(now + timedelta(hours=1)),
        }
        draft.update(changes)
        return draft

    async def create(self, **changes: Any) -> dict[str, Any]:
        body = await self.run(CREATE, {"input": self.draft(**changes)})
        assert "errors" not in body, body
        poll: dict[str, Any] = body["data"]["createPoll"]
        return poll

    async def get(self, poll_id: str) -> dict[str, Any]:
        body = await self.run(GET, {"id": poll_id})
        assert "errors" not in body, body
        poll: dict[str, Any] = body["data"]["poll"]
        return poll

    async def messages(self, channel: int | None = None) -> list[dict[str, Any]]:
        """What the bot posted in the channel, oldest first, with who each message pinged."""
        answer = await self.http.control("GET", f"/_sandbox/channels/{channel or self.channel}/messages")
        found: list[dict[str, Any]] = answer["messages"]
        bot = str(self.api.sandbox.fixture.bot.id)
        return [message for message in found if message["author"]["id"] == bot]

    async def until_status(self, poll_id: str, status: str, within: float = 10) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        async def reached() -> bool:
            seen.update(await self.get(poll_id))
            return bool(seen["status"] == status)

        await wait_until(reached, within=within, interval=0.05)
        return seen
