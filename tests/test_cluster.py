"""The core of the roles, live and polls suites against a real Redis Cluster (three masters with a
replica each, Debian's redis-server), ending with a failover: a master killed under a workload,
its replica promoted, no wrong answer meanwhile, and subscribers resynced and following again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from app.cache.keys import CacheKeys
from app.redis_cluster import LocalCluster
from app.sandbox.fixture import Fixture
from tests import test_subscriptions as live
from tests.conftest import RunningApi, RunningBot, SandboxHttp, guild_id, role_id, wait_until
from tests.poll_stack import Polls
from tests.test_poll_updates import subscribe as poll_subscriber  # noqa: F401 (a fixture)
from tests.test_poll_updates import until_kind, update
from tests.test_socket_promises import Socket, open_socket  # noqa: F401 (a fixture)
from tests.test_subscriptions import Subscriber, subscribers  # noqa: F401 (a fixture)
from tests.test_votes import VOTE, Person, people  # noqa: F401 (a fixture)

# One cluster for the module, formed in one test process.
pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90), pytest.mark.xdist_group("cluster")]

PINGABLE = "query($g: ID!) { pingableRoles(guildId: $g) { name } }"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One cluster for the module (it takes a couple of seconds to form)."""
    started = LocalCluster(Path(tmp_path_factory.mktemp("cluster")))
    started.start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def redis_url(cluster: LocalCluster) -> str:
    """Overrides conftest's: every API and bot of this module uses the cluster, emptied first."""
    cluster.flush()
    return cluster.url


def names(body: dict[str, Any]) -> list[str]:
    assert "errors" not in body, body
    return [role["name"] for role in body["data"]["pingableRoles"]]


def response_cache(result: str) -> float:
    return REGISTRY.get_sample_value("polly_response_cache_total", {"result": result}) or 0.0


async def held(cluster: LocalCluster, api: RunningApi, guild: int) -> None:
    """Wait until the API's hub holds the guild's sharded subscription, on the slot's master."""
    channel = CacheKeys(api.settings.cache_prefix).guild_events(guild)

    async def subscribed() -> bool:
        def count() -> int:
            with cluster.master_of(channel).client() as client:
                reply = client.execute_command("PUBSUB", "SHARDNUMSUB", channel)
            return int(reply[1])

        return await asyncio.to_thread(count) >= 1

    await wait_until(subscribed, within=10)


async def test_answers_come_from_the_response_cache_and_follow_changes(
    gateway_bot: RunningBot, api: RunningApi, http: SandboxHttp, fixture: Fixture
) -> None:
    playground = guild_id(fixture, "Polly Playground")
    first = names((await api.query(PINGABLE, {"g": str(playground)}))[1])
    assert "Event Pings" in first
    hits = response_cache("hit")
    for _ in range(3):
        assert names((await api.query(PINGABLE, {"g": str(playground)}))[1]) == first
    assert response_cache("hit") - hits == 3
    assert api.rest_calls() == 0  # the bot wrote the guild through: Discord is never asked

    # A change written through by the bot retires the cached answer (a new version of the guild).
    fresh = {"name": "Fresh", "mentionable": True}
    _, role = await http.call("POST", f"/guilds/{playground}/roles", json=fresh)

    async def shows_it() -> bool:
        return "Fresh" in names((await api.query(PINGABLE, {"g": str(playground)}))[1])

    await wait_until(shows_it, within=10)
    voters = role_id(fixture, "Polly Playground", "Poll Voters")
    validate = "query($g: ID!, $r: [ID!]!) { validateRoles(guildId: $g, roleIds: $r) { roleId canPing } }"
    _, body = await api.query(validate, {"g": str(playground), "r": [str(voters), role["id"]]})
    assert [v["canPing"] for v in body["data"]["validateRoles"]] == [True, True], body
    stats = await api.services.role_cache.get_cache_stats()
    assert stats["redis"]["available"] and stats["redis"]["keys"] > 0 and stats["redis"]["used_memory"] > 0


async def test_the_rate_limit_holds_across_the_cluster(
    api_factory: Callable[..., Awaitable[RunningApi]], fixture: Fixture
) -> None:
    api = await api_factory(rate_limit_burst=3, rate_limit_per_second=0.01)
    quiet = str(guild_id(fixture, "Quiet Corner"))
    statuses = [(await api.query(PINGABLE, {"g": quiet}))[0] for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]  # answered from the cache or not, each counts
    response = await api.client.post("/graphql", json={"query": PINGABLE, "variables": {"g": quiet}})
    assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1
    assert response.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


async def test_a_role_change_reaches_a_subscriber(
    cluster: LocalCluster,
    gateway_bot: RunningBot,
    api: RunningApi,
    http: SandboxHttp,
    subscribers: list[Subscriber],  # noqa: F811
    fixture: Fixture,
) -> None:
    playground = guild_id(fixture, "Polly Playground")
    subscriber = await live.subscribe(subscribers, api, {"g": str(playground), "since": "0-0"})
    first = await subscriber.next()
    assert first["kind"] == "GUILD_RESYNCED"  # since "0-0": the current list first
    await held(cluster, api, playground)
    pingable = {"name": "Live", "mentionable": True}
    _, role = await http.call("POST", f"/guilds/{playground}/roles", json=pingable)
    change = await subscriber.next()
    assert (change["kind"], change["roleId"]) == ("ROLE_CREATED", role["id"])
    assert {"id": role["id"], "name": "Live"} in change["pingableRoles"]
    # A subscriber coming back with the id it saw last gets what it missed, from the stream.
    await http.call("PATCH", f"/guilds/{playground}/roles/{role['id']}", json={"name": "Renamed"})
    renamed = await subscriber.next()
    late = await live.subscribe(subscribers, api, {"g": str(playground), "since": change["eventId"]})
    replayed = await late.next()
    assert (replayed["kind"], replayed["eventId"]) == ("ROLE_UPDATED", renamed["eventId"])


async def test_a_poll_is_created_voted_on_and_its_results_followed_live(
    polls: Polls,
    poll_subscriber: Callable[..., Awaitable[Socket]],  # noqa: F811
    people: dict[str, Person],  # noqa: F811
) -> None:
    socket = await poll_subscriber()
    poll = await polls.create(name="Clustered")
    assert (await update(socket))["kind"] == "CREATED"
    await until_kind(socket, "OPENED")
    alice, bob = people["alice"], people["bob"]
    voted = await alice.run(VOTE, p=poll["id"], pos=[0])
    assert [o["votes"] for o in voted["data"]["castVote"]["results"]["options"]] == [1, 0], voted
    await bob.run(VOTE, p=poll["id"], pos=[1])
    seen = [await update(socket)]
    while seen[-1]["poll"]["results"]["voters"] != 2:
        seen.append(await update(socket))
    assert seen[-1]["kind"] == "VOTES_CHANGED"
    assert [o["votes"] for o in seen[-1]["poll"]["results"]["options"]] == [1, 1]


class Workload:
    """Queries two guilds over and over, keeping every answer with when it was asked."""

    def __init__(self, api: RunningApi, guilds: dict[int, str]) -> None:
        self.api = api
        self.guilds = guilds
        self.answers: list[tuple[float, int, int, dict[str, Any]]] = []  # asked at, guild, status, body
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            for guild in self.guilds:
                asked = time.monotonic()
                status, body = await self.api.query(PINGABLE, {"g": str(guild)})
                self.answers.append((asked, guild, status, body))
            await asyncio.sleep(0.01)  # a client's pace, not a spin

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_a_master_fails_over_with_no_wrong_answer_and_subscribers_resync(
    cluster: LocalCluster,
    gateway_bot: RunningBot,
    api: RunningApi,
    http: SandboxHttp,
    subscribers: list[Subscriber],  # noqa: F811
    fixture: Fixture,
) -> None:
    playground, quiet = guild_id(fixture, "Polly Playground"), guild_id(fixture, "Quiet Corner")
    before = {g: names((await api.query(PINGABLE, {"g": str(g)}))[1]) for g in (playground, quiet)}
    subscriber = await live.subscribe(subscribers, api, {"g": str(playground)})
    await held(cluster, api, playground)
    workload = Workload(api, {playground: "Polly Playground", quiet: "Quiet Corner"})
    try:

        async def answering() -> bool:
            return len(workload.answers) >= 10

        await wait_until(answering, within=10)
        keys = CacheKeys(api.settings.cache_prefix)
        master = cluster.master_of(keys.guild_roles(playground))
        promoted = await cluster.stop_master_async(master)
        assert promoted is not master and cluster.master_of(keys.guild_roles(playground)) is promoted

        # Events may have been announced while the subscription was down: the hub says so.
        resynced = await subscriber.next(within=30)
        assert (resynced["kind"], resynced["roleId"]) == ("GUILD_RESYNCED", None)
        assert [r["name"] for r in resynced["pingableRoles"]] == before[playground]

        # Then events flow again. The bot may have written the change while its breaker was
        # still open: it then rewrites the guild and announces GUILD_RESYNCED instead.
        changed_at = time.monotonic()
        _, role = await http.call(
            "POST", f"/guilds/{playground}/roles", json={"name": "After Failover", "mentionable": True}
        )
        following = await subscriber.next(within=30)
        while "After Failover" not in [r["name"] for r in following["pingableRoles"]]:
            following = await subscriber.next(within=30)
        assert following["kind"] in ("ROLE_CREATED", "GUILD_RESYNCED"), following
        seen_at = time.monotonic()

        async def current() -> bool:
            answers = [a for a in workload.answers if a[0] > seen_at and a[1] == playground and a[2] == 200]
            return any("After Failover" in _names(a[3]) for a in answers)

        await wait_until(current, within=20)
    finally:
        await workload.stop()

    after = {**before, playground: sorted([*before[playground], "After Failover"])}
    before = {guild: sorted(found) for guild, found in before.items()}
    served = degraded = 0
    for asked, guild, status, body in workload.answers:
        if status != 200 or "errors" in body:
            continue  # refused during the failover: no answer, no wrong one
        served += 1
        degraded += "degraded" in body.get("extensions", {})
        found = sorted(_names(body))
        assert found in (before[guild], after[guild]), (guild, found)  # never another guild's
        if guild == playground and asked > seen_at:
            # The change was announced: an answer asked since is never the older list.
            assert "After Failover" in found, body
        if guild == playground and asked < changed_at:
            assert "After Failover" not in found, body
    assert served >= 10, workload.answers[-5:]
    assert role["name"] == "After Failover"
    # Some were answered from Discord while the cluster was down (the breaker open), and after
    # it settled the cache served again.
    assert degraded >= 1
    assert not any(
        "degraded" in body.get("extensions", {}) for asked, _, _, body in workload.answers if asked > seen_at
    )


def _names(body: dict[str, Any]) -> list[str]:
    return [role["name"] for role in body["data"]["pingableRoles"]]
