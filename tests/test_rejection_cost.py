"""A refused document costs its caller rate limit in proportion to the server time it took, so
one caller within its limit cannot keep a core busy with documents the server turns away."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from app.sandbox.fixture import Fixture
from tests.conftest import GRAPHQL_RESPONSE, RunningApi, create_key, guild_id

# 1,992 tokens (under the token limit), 22 KB (over the length up to which a verdict is
# remembered): parsed afresh each time, then refused for repeating one field 1,990 times.
COSTLY = {"query": "{ " + "apiVersion " * 1990 + "}"}


async def statuses(api: RunningApi, token: str, body: dict[str, str], count: int) -> list[int]:
    headers = {"Authorization": f"Bearer {token}", "Accept": GRAPHQL_RESPONSE}
    return [(await api.client.post("/graphql", json=body, headers=headers)).status_code for _ in range(count)]


async def test_costly_refusals_spend_the_callers_rate_limit(
    api_factory: Callable[..., Awaitable[RunningApi]], fixture: Fixture
) -> None:
    # Any real parse of 2,000 tokens takes far more than a microsecond: each refusal costs the
    # caller more than its whole burst, so the one after it waits.
    api = await api_factory(rate_limit_burst=20, rate_limit_per_second=0.01, rejected_document_ms=0.001)
    guild = [guild_id(fixture, "Polly Playground")]
    costly = await create_key(api.settings, guild, ["roles:read"])
    answers = await statuses(api, costly, COSTLY, 3)
    assert answers[0] == 400, answers  # refused, and charged for it
    assert answers[1:] == [429, 429], answers

    # Another caller is not charged for it.
    other = await create_key(api.settings, guild, ["roles:read"])
    assert await statuses(api, other, {"query": "{ apiVersion }"}, 1) == [200]
