"""500 polls due in the same second across 50 channels, two ``polly bot`` processes scheduling
them: is each posted exactly once, does the sandbox answer any 429, and how late is each post
after its opensAt, next to the fastest Discord's rate limits allow.

The sandbox enforces Discord's limits: 5 messages per channel per 5 seconds, 50 requests a
second per bot. The baseline is the schedule an all-knowing sender would follow under the same
limits (every post at the earliest moment both limits allow), computed in this run.

Run: bench/polls [--polls 500] [--channels 50] [--bots 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.processes import REPO, Stack, polly_env, reset_sandbox_stats, sandbox_stats

CHANNEL_LIMIT, CHANNEL_WINDOW, GLOBAL_PER_SECOND = 5, 5.0, 50
CREATE = "mutation($input: CreatePollInput!) { createPoll(input: $input) { id opensAt } }"
BOT_GUILDS = "{ botGuilds { id } }"
STATUS = "query($g: ID!, $after: String) { polls(guildId: $g, first: 100, after: $after) {" \
    " nodes { id status messageId } pageInfo { endCursor hasNextPage } } }"  # fmt: skip


def fastest_schedule(channels: list[int], global_limit: bool = True) -> list[float]:
    """Each post's earliest lateness (s), all due at 0: each channel takes its next free slot
    (CHANNEL_LIMIT per CHANNEL_WINDOW) and, with ``global_limit``, at most GLOBAL_PER_SECOND
    go out in a second."""
    sent_in_channel: dict[int, list[float]] = {}
    per_second: dict[int, int] = {}
    lateness = []
    for channel in channels:
        earlier = sent_in_channel.setdefault(channel, [])
        at = 0.0 if len(earlier) < CHANNEL_LIMIT else earlier[-CHANNEL_LIMIT] + CHANNEL_WINDOW
        while global_limit and per_second.get(int(at), 0) >= GLOBAL_PER_SECOND:
            at = float(int(at) + 1)
        per_second[int(at)] = per_second.get(int(at), 0) + 1
        earlier.append(at)
        lateness.append(at)
    return lateness


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def polls_key(sandbox: str, redis_url: str, data_dir: str, guilds: list[str]) -> dict[str, str]:
    env = polly_env(sandbox, redis_url, {"data_dir": data_dir})
    created = subprocess.run(
        [sys.executable, "-m", "app", "keys", "create", "--scope", "polls:read", "--scope", "polls:write",
         "--json", *(argument for guild in guilds for argument in ("--guild", guild))],
        cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {"Authorization": f"Bearer {json.loads(created.stdout)['token']}"}


async def create_polls(
    api: str, auth: dict[str, str], targets: list[tuple[str, str]], opens: datetime
) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=api, headers=auth, timeout=60) as client:
        gate = asyncio.Semaphore(16)

        async def one(number: int, guild: str, channel: str) -> dict[str, Any]:
            draft = {
                "guildId": guild, "channelId": channel, "name": f"Bench poll {number}",
                "question": "Which one?", "options": [{"text": "Yes"}, {"text": "No"}],
                "opensAt": opens.isoformat(), "closesAt": (opens + timedelta(hours=1)).isoformat(),
            }  # fmt: skip
            async with gate:
                response = await client.post(
                    "/graphql", json={"query": CREATE, "variables": {"input": draft}}
                )
            body = response.json()
            if "errors" in body:
                raise SystemExit(f"createPoll failed: {body['errors']}")
            created: dict[str, Any] = body["data"]["createPoll"]
            return created

        return list(await asyncio.gather(*(one(n, g, c) for n, (g, c) in enumerate(targets))))


def opened_count(api: str, auth: dict[str, str], guilds: list[str]) -> int:
    count = 0
    with httpx.Client(base_url=api, headers=auth, timeout=60) as client:
        for guild in guilds:
            after = None
            while True:
                body = client.post(
                    "/graphql", json={"query": STATUS, "variables": {"g": guild, "after": after}}
                )
                page = body.json()["data"]["polls"]
                count += sum(1 for poll in page["nodes"] if poll["status"] == "OPEN")
                if not page["pageInfo"]["hasNextPage"]:
                    break
                after = page["pageInfo"]["endCursor"]
    return count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--polls", type=int, default=500)
    parser.add_argument("--channels", type=int, default=50, help="an even number: two per guild")
    parser.add_argument("--bots", type=int, default=2, help="polly bot processes")
    parser.add_argument("--lead", type=float, default=20.0, help="seconds from now to the polls' opensAt")
    args = parser.parse_args()
    with Stack() as stack:
        redis_url = stack.redis()
        sandbox = stack.sandbox(None, "--guilds", str(args.channels // 2), "--seed", "3")
        limits = {
            "route_limit": CHANNEL_LIMIT,
            "route_window": CHANNEL_WINDOW,
            "global_per_second": GLOBAL_PER_SECOND,
        }
        httpx.post(f"{sandbox}/_sandbox/ratelimits", json=limits).raise_for_status()
        fixture = httpx.get(f"{sandbox}/_sandbox/fixture").json()
        channels = [(g["id"], c["id"]) for g in fixture["guilds"] for c in g["channels"]]
        guilds = [g["id"] for g in fixture["guilds"]]
        api = stack.api(sandbox, redis_url)
        data_dir = stack.data_dir or ""

        auth = polls_key(sandbox, redis_url, data_dir, guilds)
        for _ in range(args.bots):
            stack.bot(sandbox, redis_url, data_dir=data_dir)
        # The bots write every guild through to Redis: validating the polls then costs no
        # Discord call, and nothing but the posts spends the bot's rate limits.
        deadline = time.monotonic() + 60
        while len(httpx.post(f"{api}/graphql", json={"query": BOT_GUILDS}, headers=stack.auth).json()
                  .get("data", {}).get("botGuilds") or []) < len(guilds):  # fmt: skip
            if time.monotonic() > deadline:
                raise SystemExit("The bots did not sync every guild within a minute.")
            time.sleep(0.2)

        opens = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=args.lead)
        targets = [channels[n % len(channels)] for n in range(args.polls)]
        created = asyncio.run(create_polls(api, auth, targets, opens))
        if datetime.now(UTC) >= opens:
            raise SystemExit("Creating the polls took longer than --lead; give it more.")
        reset_sandbox_stats(sandbox)
        deadline = time.monotonic() + args.lead + 300
        while opened_count(api, auth, guilds) < args.polls:
            if time.monotonic() > deadline:
                raise SystemExit("Not every poll opened within five minutes.")
            time.sleep(0.5)
        stats = sandbox_stats(sandbox)
        messages = []
        for _, channel in channels:
            listed = httpx.get(f"{sandbox}/_sandbox/channels/{channel}/messages").json()["messages"]
            messages += [(channel, m) for m in listed]

    poll_ids = [m["embeds"][0]["footer"]["text"] for _, m in messages if m.get("embeds")]
    lateness = [
        (datetime.fromisoformat(m["timestamp"]) - opens).total_seconds()
        for _, m in messages
        if m.get("embeds")
    ]
    ideal = fastest_schedule([int(c) for _, c in targets])
    per_channel = fastest_schedule([int(c) for _, c in targets], global_limit=False)
    posts = stats["by_route"].get("POST /channels/{channel_id}/messages", 0)
    limited = stats["by_status"].get("429", 0)
    print(f"{args.polls} polls due at one second, {len(channels)} channels, {args.bots} polly bot processes")
    print(f"  messages posted: {len(poll_ids)} for {len(set(poll_ids))} polls (created {len(created)});"
          f" POST calls: {posts}; 429 answers: {limited}")  # fmt: skip
    print(f"  {'':26}{'p50':>9}{'p99':>9}{'max':>9}")
    rows = (
        ("lateness after opensAt", lateness),
        ("fastest both limits allow", ideal),
        ("fastest per channel alone", per_channel),
    )
    for name, values in rows:
        print(
            f"  {name:24}{percentile(values, 0.5):8.2f}s{percentile(values, 0.99):8.2f}s{max(values):8.2f}s"
        )
    behind = statistics.median(lateness) - statistics.median(ideal)
    ratio = percentile(lateness, 0.99) / max(percentile(ideal, 0.99), 1e-9)
    print(f"  against the fastest both limits allow: p50 {behind:+.2f}s, p99 {ratio:.2f}x")


if __name__ == "__main__":
    main()
