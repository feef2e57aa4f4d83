"""Discord REST calls of one workload served three ways: no cache, the origin design (30-minute
TTL plus invalidation on role events), and ours (write-through from the gateway).

The workload, about a minute of it: Zipf-distributed pingableRoles and validateRoles queries
over 1,000 guilds, while the sandbox renames and toggles roles throughout. The same seeded
workload runs against a fresh sandbox and Redis for each way. The sandbox runs without rate
limits: this counts calls, it does not time them.

Run: bench/api_calls [--duration 60] [--rate 100] [--changes 2] [--guilds 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from app.discord.client import DiscordRest
from bench.processes import Stack, reset_sandbox_stats, sandbox_stats

PINGABLE = "query($g: ID!) { pingableRoles(guildId: $g) { id name } }"
VALIDATE = "query($g: ID!, $r: [ID!]!) { validateRoles(guildId: $g, roleIds: $r) { roleId canPing } }"


@dataclass(frozen=True)
class Query:
    at: float
    guild: str
    roles: tuple[str, ...]  # empty: pingableRoles


@dataclass(frozen=True)
class RoleChange:
    at: float
    guild: str
    role: str
    body: dict[str, Any]


class Zipf:
    def __init__(self, items: Sequence[str], exponent: float, rng: random.Random) -> None:
        self.items = list(items)
        rng.shuffle(self.items)  # popularity unrelated to id order
        weights = [1 / (rank**exponent) for rank in range(1, len(self.items) + 1)]
        self.cumulative = list(itertools.accumulate(weights))
        self.rng = rng

    def pick(self) -> str:
        return self.items[bisect.bisect(self.cumulative, self.rng.random() * self.cumulative[-1])]


def workload(fixture: dict[str, Any], args: argparse.Namespace) -> tuple[list[Query], list[RoleChange]]:
    rng = random.Random(args.seed)
    roles = {g["id"]: [r["id"] for r in g["roles"] if r["id"] != g["id"]] for g in fixture["guilds"]}
    zipf = Zipf(sorted(roles), args.exponent, rng)
    queries = []
    for n in range(int(args.duration * args.rate)):
        guild = zipf.pick()
        picked = tuple(rng.sample(roles[guild], min(3, len(roles[guild])))) if rng.random() < 0.3 else ()
        queries.append(Query(n / args.rate, guild, picked))
    changes = []
    for n in range(int(args.duration * args.changes)):
        guild = zipf.pick()
        role = rng.choice(roles[guild])
        body = {"name": f"Renamed {n}"} if n % 2 == 0 else {"mentionable": bool(rng.getrandbits(1))}
        changes.append(RoleChange(n / args.changes, guild, role, body))
    return queries, changes


async def play(queries: list[Query], changes: list[RoleChange], sandbox: str, answer: Any) -> tuple[int, int]:
    """Run the workload in real time; returns (queries answered without error, changes made)."""
    started = time.monotonic()
    answered = 0
    made = 0

    async def at(moment: float) -> None:
        delay = started + moment - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def ask(query: Query) -> None:
        nonlocal answered
        await at(query.at)
        ok = await answer(query)  # awaited first: "answered += await ..." would lose counts
        answered += ok

    async def change(item: RoleChange, client: httpx.AsyncClient) -> None:
        nonlocal made
        await at(item.at)
        response = await client.patch(
            f"{sandbox}/_sandbox/guilds/{item.guild}/roles/{item.role}", json=item.body
        )
        made += response.status_code == 200

    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(ask(q) for q in queries), *(change(c, client) for c in changes))
    return answered, made


def graphql_answer(api: str, client: httpx.AsyncClient) -> Any:
    async def answer(query: Query) -> int:
        if query.roles:
            body = {"query": VALIDATE, "variables": {"g": query.guild, "r": list(query.roles)}}
        else:
            body = {"query": PINGABLE, "variables": {"g": query.guild}}
        response = await client.post(f"{api}/graphql", json=body)
        return int(response.status_code == 200 and "errors" not in response.json())

    return answer


def run_way(way: str, args: argparse.Namespace) -> dict[str, Any]:
    with Stack() as stack:
        redis_url = stack.redis()
        sandbox = stack.sandbox(
            None, "--guilds", str(args.guilds), "--seed", str(args.seed), "--no-rate-limits"
        )
        fixture = httpx.get(f"{sandbox}/_sandbox/fixture").json()
        queries, changes = workload(fixture, args)
        if way != "no cache":
            stack.bot(sandbox, redis_url, origin_design=way != "ours")
            api = stack.api(sandbox, redis_url)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # the bot's session has seen every GUILD_CREATE
                sessions = httpx.get(f"{sandbox}/_sandbox/gateway/sessions").json()["sessions"]
                if sessions and sessions[0]["connected"] and sessions[0]["seq"] >= args.guilds + 1:
                    break
                time.sleep(0.2)
            time.sleep(2)  # and applied them
        reset_sandbox_stats(sandbox)

        async def main() -> tuple[int, int]:
            limits = httpx.Limits(max_connections=200)
            async with httpx.AsyncClient(timeout=60, limits=limits, headers=stack.auth) as client:
                if way != "no cache":
                    return await play(queries, changes, sandbox, graphql_answer(api, client))
                token = fixture["bot"]["token"]
                async with DiscordRest(api_url=f"{sandbox}/api/v10", token=token) as rest:
                    reset_sandbox_stats(sandbox)

                    async def fetch(query: Query) -> int:
                        # What a resolver without a cache does: the guild's roles, the bot's
                        # member and the channels, every time.
                        guild = int(query.guild)
                        await asyncio.gather(
                            rest.guild(guild),
                            rest.member(guild, rest.bot_user_id),
                            rest.guild_channels(guild),
                        )
                        return 1

                    return await play(queries, changes, sandbox, fetch)

        answered, made = asyncio.run(main())
        stats = sandbox_stats(sandbox)
    return {
        "way": way,
        "queries": len(queries),
        "answered": answered,
        "changes": made,
        "calls": stats["total"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=60, help="seconds of workload (default 60)")
    parser.add_argument("--rate", type=float, default=100, help="queries per second (default 100)")
    parser.add_argument("--changes", type=float, default=2, help="role changes per second (default 2)")
    parser.add_argument("--guilds", type=int, default=1000, help="guilds in the sandbox (default 1000)")
    parser.add_argument("--exponent", type=float, default=1.1, help="Zipf exponent (default 1.1)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    results = [run_way(way, args) for way in ("no cache", "origin design", "ours")]
    baseline = results[0]["calls"]
    spread = f"Zipf {args.exponent} over {args.guilds} guilds"
    first = results[0]
    print(f"{first['queries']} queries over {args.duration:g}s ({spread}), {first['changes']} role changes")
    for result in results:
        reduction = 1 - result["calls"] / baseline if baseline else 0.0
        print(
            f"  {result['way']:14} {result['calls']:7d} Discord REST calls   "
            f"{reduction:7.2%} fewer than no cache   ({result['answered']}/{result['queries']} answered)"
        )


if __name__ == "__main__":
    main()
