"""Requests/s, p50 and p99 of a repeated pingableRoles query (50-role guild), next to a bare
Starlette endpoint that returns the same bytes from Redis, under the same wrk load; with one
worker process each, and with two (``polly api --workers 2``; the bare endpoint under uvicorn's
``--workers 2``).

Run: bench/roles_throughput [--duration 10] [--connections 64] [--rounds 2] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import urllib.parse

import httpx
import redis

from app.sandbox.builtin import generated_fixture
from bench.processes import Stack

QUERY = (
    "query Pingable($g: ID!) { pingableRoles(guildId: $g) { id name color position mentionable managed } }"
)


def fixture_with_a_50_role_guild() -> dict[str, object]:
    fixture = generated_fixture(1, seed=3)
    guild = fixture.guilds[0]
    while len(guild.roles) < 50:
        template = guild.roles[-1]
        guild.roles.append(
            template.model_copy(
                update={"id": template.id + 1, "name": f"Role {len(guild.roles)}", "position": 1}
            )
        )
    guild.roles = guild.roles[:50]
    for role in guild.roles[2:]:
        role.mentionable = True
    return fixture.model_dump(mode="json")


def wrk(url: str, duration: int, connections: int, headers: dict[str, str]) -> tuple[float, float, float]:
    header_args = [argument for name, value in headers.items() for argument in ("-H", f"{name}: {value}")]
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", *header_args, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]

    def percentile(name: str) -> float:
        value, unit = re.search(rf"\s{name}%\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    if "Non-2xx" in output or "Socket errors" in output:
        print(output, file=sys.stderr)
        raise SystemExit("wrk saw errors; the figures would be wrong.")
    return rate, percentile("50"), percentile("99")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per endpoint (default 2)")
    parser.add_argument("--workers", default="1,2", help="worker counts to measure (default 1,2)")
    args = parser.parse_args()
    worker_counts = [int(n) for n in args.workers.split(",")]
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    with Stack() as stack:
        redis_url = stack.redis()
        fixture = fixture_with_a_50_role_guild()
        guild_id = fixture["guilds"][0]["id"]  # type: ignore[index]
        sandbox = stack.sandbox(fixture)
        params = urllib.parse.urlencode({"query": QUERY, "variables": f'{{"g": "{guild_id}"}}'})
        results: dict[tuple[int, str], list[tuple[float, float, float]]] = {}
        for workers in worker_counts:
            api = stack.api(sandbox, redis_url, workers=workers)
            api_url = f"{api}/graphql?{params}"
            body = httpx.get(api_url, headers=stack.auth).content  # the first request fills the cache
            # All but @everyone and the bot's.
            assert b'"errors"' not in body and body.count(b'"id"') == 48, body[:200]
            redis.Redis.from_url(redis_url).set("bench:response", body)
            serve = [sys.executable, "-m", "bench.bare_server", "bench.bare_endpoint:app"]
            bare = stack.spawn_listening([*serve, "--workers", str(workers)], {"BARE_REDIS_URL": redis_url})
            bare_url = f"{bare}/graphql?{params}"
            assert httpx.get(bare_url).content == body
            # Both get the API key header: the API checks it (and the caller's rate limit) on
            # every request; the bare endpoint ignores it.
            wrk(api_url, 2, args.connections, stack.auth)  # warm both
            wrk(bare_url, 2, args.connections, stack.auth)
            for _ in range(args.rounds):
                for name, url in (("api", api_url), ("bare", bare_url)):
                    results.setdefault((workers, name), []).append(
                        wrk(url, args.duration, args.connections, stack.auth)
                    )

    load = f"wrk -c{args.connections}, {args.rounds}x{args.duration}s"
    print(f"pingableRoles, 50-role guild, {len(body)} bytes; {load}")
    for workers in worker_counts:
        rates = {}
        for name in ("api", "bare"):
            runs = results[(workers, name)]
            rate = statistics.median(r[0] for r in runs)
            p50 = statistics.median(r[1] for r in runs)
            p99 = statistics.median(r[2] for r in runs)
            rates[name] = rate
            label = "polly api /graphql" if name == "api" else "bare Starlette + Redis GET"
            label += f", workers {workers}"
            print(f"  {label:39} {rate:9.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
        print(f"  ratio (api / bare), workers {workers}: {rates['api'] / rates['bare']:.2f}")


if __name__ == "__main__":
    main()
