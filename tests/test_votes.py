"""Votes from GraphQL as signed-in people, against a running API, polly bot and the sandbox:
the rules, the results (hidden until close where asked), who voted (never for anonymous
polls), and the poll's message following the votes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.conftest import role_id, wait_until
from tests.poll_stack import Polls
from tests.test_access_matrix import log_in

pytestmark = pytest.mark.asyncio

VOTE = """mutation($p: ID!, $pos: [Int!]!) { castVote(pollId: $p, positions: $pos) {
  id myBallot results { voters options { position votes } } } }"""
RETRACT = "mutation($p: ID!) { retractVote(pollId: $p) { myBallot results { voters options { votes } } } }"
READ = """query($p: ID!) { poll(id: $p) {
  status myBallot results { voters version options { position votes } } } }"""
VOTERS = "query($p: ID!, $pos: Int) { poll(id: $p) { voters(position: $pos) { nodes { userId } } } }"


class Person:
    def __init__(self, name: str, client: httpx.AsyncClient, origin: str) -> None:
        self.name = name
        self.client = client
        self.origin = origin

    async def run(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables}, headers={"Origin": self.origin}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest_asyncio.fixture
async def people(polls: Polls) -> AsyncIterator[dict[str, Person]]:
    signed_in = {
        name: Person(name, await log_in(polls.api, name), polls.api.url) for name in ("alice", "bob", "carol")
    }
    try:
        yield signed_in
    finally:
        for person in signed_in.values():
            await person.client.aclose()


def counts(body: dict[str, Any], field: str = "castVote") -> list[int]:
    return [o["votes"] for o in body["data"][field]["results"]["options"]]


async def test_a_vote_replaces_the_last_and_can_be_taken_back(
    polls: Polls, people: dict[str, Person]
) -> None:
    poll = await polls.create()
    await polls.until_status(poll["id"], "OPEN")
    carol, bob = people["carol"], people["bob"]
    first = await carol.run(VOTE, p=poll["id"], pos=[0])
    assert first["data"]["castVote"]["myBallot"] == [0] and counts(first) == [1, 0]
    changed = await carol.run(VOTE, p=poll["id"], pos=[1])
    assert changed["data"]["castVote"]["myBallot"] == [1] and counts(changed) == [0, 1]
    both = await bob.run(VOTE, p=poll["id"], pos=[1])
    assert counts(both) == [0, 2] and both["data"]["castVote"]["results"]["voters"] == 2
    taken = await carol.run(RETRACT, p=poll["id"])
    assert taken["data"]["retractVote"]["myBallot"] is None
    assert taken["data"]["retractVote"]["results"]["voters"] == 1
    read = await bob.run(READ, p=poll["id"])
    assert read["data"]["poll"]["myBallot"] == [1]


async def test_the_rules_of_a_vote(polls: Polls, people: dict[str, Person]) -> None:
    poll = await polls.create(
        options=[{"text": "A"}, {"text": "B"}, {"text": "C"}],
        maxChoices=2,
        allowedRoleIds=[str(role_id(polls.api.sandbox.fixture, "Polly Playground", "Poll Voters"))],
    )
    await polls.until_status(poll["id"], "OPEN")
    bob, carol = people["bob"], people["carol"]
    cases = [
        ([0, 1, 2], "BAD_USER_INPUT"),  # past maxChoices
        ([0, 0], "BAD_USER_INPUT"),
        ([3], "BAD_USER_INPUT"),
        ([], "BAD_USER_INPUT"),
    ]
    for positions, code in cases:
        body = await bob.run(VOTE, p=poll["id"], pos=positions)
        assert body["errors"][0]["extensions"]["code"] == code, (positions, body)
        assert body["errors"][0]["extensions"]["field"] == "positions"
    assert counts(await bob.run(VOTE, p=poll["id"], pos=[0, 2])) == [1, 0, 1]
    outsider = await carol.run(VOTE, p=poll["id"], pos=[0])  # carol holds none of the allowed roles
    assert outsider["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "Only members with one of the roles" in outsider["errors"][0]["message"]
    key = await polls.run(VOTE, {"p": poll["id"], "pos": [0]})  # an API key never votes
    assert key["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    await polls.run("mutation($id: ID!) { closePoll(id: $id) { id } }", {"id": poll["id"]})
    late = await bob.run(VOTE, p=poll["id"], pos=[1])
    assert late["errors"][0]["extensions"]["code"] == "CONFLICT"
    assert late["errors"][0]["extensions"]["status"] == "CLOSED"
    final = await bob.run(READ, p=poll["id"])
    assert final["data"]["poll"]["myBallot"] == [0, 2]


async def test_hidden_results_show_to_managers_until_the_poll_closes(
    polls: Polls, people: dict[str, Person]
) -> None:
    poll = await polls.create(resultsVisibility="AFTER_CLOSE")
    await polls.until_status(poll["id"], "OPEN")
    alice, carol = people["alice"], people["carol"]
    voted = await carol.run(VOTE, p=poll["id"], pos=[0])
    assert voted["data"]["castVote"]["results"] is None and voted["data"]["castVote"]["myBallot"] == [0]
    assert (await alice.run(READ, p=poll["id"]))["data"]["poll"]["results"][
        "voters"
    ] == 1  # the owner manages
    [message] = await polls.messages()
    assert "vote" not in str(message["embeds"])  # nor does the Discord message show counts
    await polls.run("mutation($id: ID!) { closePoll(id: $id) { id } }", {"id": poll["id"]})
    after = await carol.run(READ, p=poll["id"])
    assert after["data"]["poll"]["results"]["options"][0]["votes"] == 1


async def test_who_voted_is_for_managers_and_never_for_anonymous_polls(
    polls: Polls, people: dict[str, Person]
) -> None:
    open_poll, secret = await polls.create(name="Open"), await polls.create(name="Secret", anonymous=True)
    for poll in (open_poll, secret):
        await polls.until_status(poll["id"], "OPEN")
        for person in people.values():
            await person.run(VOTE, p=poll["id"], pos=[0])
    alice, carol = people["alice"], people["carol"]
    listed = await alice.run(VOTERS, p=open_poll["id"], pos=0)
    ids = {node["userId"] for node in listed["data"]["poll"]["voters"]["nodes"]}
    assert ids == {str(u.id) for u in polls.api.sandbox.fixture.users if u.username in people}
    refused = await carol.run(VOTERS, p=open_poll["id"], pos=0)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    hidden = await alice.run(VOTERS, p=secret["id"], pos=None)
    assert (
        hidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        and "anonymous" in hidden["errors"][0]["message"]
    )
    for person in people.values():
        body = {"query": VOTERS, "variables": {"p": secret["id"]}}
        raw = (await person.client.post("/graphql", json=body, headers={"Origin": person.origin})).text
        assert not any(str(u.id) in raw for u in polls.api.sandbox.fixture.users)


async def test_the_message_follows_the_votes_with_edits_coalesced(
    polls: Polls, people: dict[str, Person]
) -> None:
    poll = await polls.create()
    await polls.until_status(poll["id"], "OPEN")
    edits = "PATCH /channels/{channel_id}/messages/{message_id}"
    before = polls.api.sandbox.stats.snapshot()["by_route"].get(edits, 0)  # type: ignore[union-attr]
    for person in people.values():
        for position in (0, 1, 0):
            await person.run(VOTE, p=poll["id"], pos=[position])

    async def shows_the_votes() -> bool:
        [message] = await polls.messages()
        fields = message["embeds"][0]["fields"]
        return [f["value"] for f in fields] == ["3 votes", "0 votes"]

    await wait_until(shows_the_votes, within=15)
    made = polls.api.sandbox.stats.snapshot()["by_route"].get(edits, 0) - before  # type: ignore[union-attr]
    assert 1 <= made <= 3, made  # nine votes in a burst: one edit, and at most one per 2 s after


async def test_the_csv_export_names_voters_only_to_managers_and_never_for_anonymous_polls(
    polls: Polls, people: dict[str, Person]
) -> None:
    named, secret = await polls.create(name="Named"), await polls.create(name="Secret", anonymous=True)
    for poll in (named, secret):
        await polls.until_status(poll["id"], "OPEN")
        for person in people.values():
            await person.run(VOTE, p=poll["id"], pos=[0 if person.name != "bob" else 1])
    user_ids = {str(u.id): u.username for u in polls.api.sandbox.fixture.users}

    async def export(person: Person, poll: dict[str, Any]) -> str:
        response = await person.client.get(f"/polls/{poll['id']}/results.csv")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        return response.text

    managed = await export(people["alice"], named)
    assert "position,option,votes\r\n0,Pizza,2\r\n1,Sushi,1" in managed and "voters,3" in managed
    named_voters = {line.split(",")[0] for line in managed.splitlines()} & set(user_ids)
    assert {user_ids[uid] for uid in named_voters} == {"alice", "bob", "carol"}
    member = await export(people["carol"], named)
    assert "0,Pizza,2" in member and not any(uid in member for uid in user_ids)
    for person in people.values():
        anonymous = await export(person, secret)
        assert "0,Pizza,2" in anonymous and not any(uid in anonymous for uid in user_ids)
    keyed = await polls.api.client.get(f"/polls/{named['id']}/results.csv", headers=polls.auth)
    assert keyed.status_code == 200 and "0,Pizza,2" in keyed.text
    async with httpx.AsyncClient(base_url=polls.api.url) as anonymous_client:
        nobody = await anonymous_client.get(f"/polls/{named['id']}/results.csv")
    assert nobody.status_code == 401
    missing = await people["carol"].client.get("/polls/999999/results.csv")
    assert missing.status_code == 404 and missing.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
