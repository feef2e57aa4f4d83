"""1,000 concurrent pingableRoles queries for a cold guild across two API processes sharing one
Redis: how many Discord REST calls they cause, next to what one cold query causes.

Run: bench/stampede [--queries 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx

from bench.processes import Stack, reset_sandbox_stats, sandbox_stats

QUERY = "query($g: ID!) { pingableRoles(guildId: $g) { id name } }"


async def fire(urls: list[str], guild_id: str, count: int, auth: dict[str, str]) -> tuple[int, float]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(limits=limits, timeout=60, headers=auth) as client:
        started = time.perf_counter()

        async def one(n: int) -> bool:
            response = await client.post(
                f"{urls[n % len(urls)]}/graphql", json={"query": QUERY, "variables": {"g": guild_id}}
            )
            return response.status_code == 200 and "errors" not in response.json()

        answered = sum(await asyncio.gather(*(one(n) for n in range(count))))
        return answered, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=1000, help="concurrent queries (default 1000)")
    args = parser.parse_args()
    with Stack() as stack:
        redis_url = stack.redis()
        sandbox = stack.sandbox(None, "--guilds", "20", "--seed", "5")
        apis = [stack.api(sandbox, redis_url), stack.api(sandbox, redis_url)]
        guilds = [g["id"] for g in httpx.get(f"{sandbox}/_sandbox/fixture").json()["guilds"]]

        reset_sandbox_stats(sandbox)
        answered, _ = asyncio.run(fire(apis[:1], guilds[0], 1, stack.auth))
        single = sandbox_stats(sandbox)
        assert answered == 1

        reset_sandbox_stats(sandbox)
        answered, elapsed = asyncio.run(fire(apis, guilds[1], args.queries, stack.auth))
        stampede = sandbox_stats(sandbox)

    print(f"{args.queries} concurrent pingableRoles queries, one cold guild, two API processes, one Redis")
    print(f"  answered without error: {answered}/{args.queries} in {elapsed:.2f}s")
    print(f"  REST calls, one cold query:         {single['total']}  {single['by_route']}")
    print(f"  REST calls, {args.queries} concurrent queries: {stampede['total']}  {stampede['by_route']}")
    fills = stampede["by_route"].get("GET /guilds/{guild_id}", 0)
    verdict = "exactly one" if stampede["total"] == single["total"] and fills == 1 else "NOT one"
    print(f"  fills: {fills} ({verdict})")


if __name__ == "__main__":
    main()
