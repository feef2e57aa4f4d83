"""Delivery latency of one role change to 5,000 and then 10,000 subscribers of ``polly api``
with one and with two worker processes, and each process's memory, next to a bare Starlette
WebSocket broadcast loop under the same clients, in the same run: one process, and as many
processes as the most API workers measured (each on its own SO_REUSEPORT socket of one port, as
``polly api --workers`` runs them, relaying the broadcast through Redis pub/sub).

Latency is end to end: from the role change in the sandbox (through the gateway bot, Redis
pub/sub and the API's fan-out) to the bytes arriving at each subscriber. The baseline's is
from its broadcast request to arrival. Subscribers are cheap raw clients (bench/ws_clients.py)
in two processes, each subscription with its own operation id, as graphql-ws clients send them.

On one two-core machine the subscribers compete with the servers for the CPU, which they would
not from other machines. By default (``--clients kernel``) an arrival is the kernel's receive
time of the message's last bytes, and the clients run at idle priority: they use what CPU the
servers leave, and their own delays are not counted. ``--clients eager`` times each message in
Python as it is read, with the clients at normal priority (the figures earlier versions gave).

Run: bench/fanout [--counts 5000,10000] [--workers 1,2] [--rounds 5] [--clients kernel|eager]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.processes import Stack

SUBSCRIPTION = """subscription($g: ID!) { guildRolesChanged(guildId: $g) {
  kind roleId version eventId pingableRoles { id name } } }"""
CLIENT_PROCESSES = 2


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def serving_pids(pid: int) -> list[int]:
    """The processes that serve: a supervisor's workers, or the process itself."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children] or [pid]


def start_clients(
    stack: Stack, url: str, count: int, events: int, guild: str, mode: str
) -> list[subprocess.Popen[bytes]]:
    subscribe = json.dumps({"query": SUBSCRIPTION, "variables": {"g": guild}})
    processes = []
    for share in _split(count, CLIENT_PROCESSES):
        stack.spawn(
            [sys.executable, "-m", "bench.ws_clients", url, str(share), str(events), subscribe, mode],
            {"POLLY_BENCH_AUTHORIZATION": stack.auth.get("Authorization", "")},
            stdout=subprocess.PIPE,
            stdin=subprocess.PIPE,
        )
        processes.append(stack.last)
    for process in processes:
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"ready":
            raise RuntimeError("a client process could not subscribe")
    return processes


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if n < total % parts else 0) for n in range(parts)]


def collect(processes: list[subprocess.Popen[bytes]]) -> list[list[float]]:
    arrivals: list[list[float]] = []
    for process in processes:
        assert process.stdout is not None and process.stdin is not None
        arrivals += json.loads(process.stdout.readline())
        process.stdin.close()  # the clients disconnect and exit
        process.wait(timeout=30)
    return arrivals


def latencies(arrivals: list[list[float]], starts: list[float]) -> tuple[list[float], int]:
    """Per subscriber and round (the first message is the warm-up), and how many were missing."""
    values, missing = [], 0
    for per_subscriber in arrivals:
        for round_number, started in enumerate(starts, start=1):
            if round_number < len(per_subscriber):
                values.append((per_subscriber[round_number] - started) * 1000)
            else:
                missing += 1
    return sorted(values), missing


def p99(values: list[float]) -> float:
    return values[min(len(values) - 1, int(len(values) * 0.99))]


def figures(arrivals: list[list[float]], starts: list[float]) -> dict[str, Any]:
    values, missing = latencies(arrivals, starts)
    per_change = [
        p99(sorted((times[n] - started) * 1000 for times in arrivals if n < len(times)) or [0.0])
        for n, started in enumerate(starts, start=1)
    ]
    return {
        "p50": statistics.median(values),
        "p99": p99(values),
        "max": values[-1],
        "per_change": per_change,
        "missing": missing,
    }


def measure(
    stack: Stack, args: argparse.Namespace, count: int, context: dict[str, Any], target: str
) -> dict[str, Any]:
    """One warm-up and ``args.rounds`` broadcasts to ``count`` subscribers of ``target``: "api"
    (a role change in the sandbox) or "bare..." (a POST that makes the baseline broadcast)."""
    ws, pids = (context[f"{target}_ws"], context[f"{target}_pids"])
    clients = start_clients(stack, ws, count, args.rounds + 1, context["guild"], args.clients)
    time.sleep(2)  # the last subscriptions reach their group
    http: httpx.Client = context["http"]
    change = f"{context['sandbox']}/_sandbox/guilds/{context['guild']}/roles/{context['role']}"

    def broadcast(name: str) -> None:
        if not target.startswith("bare"):
            http.patch(change, json={"name": name})
        else:
            # The broadcast runs inside the request; the clients time its arrival, not its answer.
            http.post(context[f"{target}_fire"], content=context["message"], timeout=60)

    broadcast("Warm-up")
    time.sleep(args.gap)
    starts = []
    for n in range(args.rounds):
        starts.append(time.time())
        broadcast(f"Voters {count}-{n}")
        time.sleep(args.gap)
    memory = [rss_mib(serving) for pid in pids for serving in serving_pids(pid)]
    return {**figures(collect(clients), starts), "rss": memory}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--counts", default="5000,10000", help="subscriber counts, in order (default 5000,10000)"
    )
    parser.add_argument(
        "--workers", default="1,2", help="polly api --workers values to measure (default 1,2)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="role changes measured per count (default 5)")
    parser.add_argument("--gap", type=float, default=1.5, help="seconds between changes (default 1.5)")
    parser.add_argument(
        "--clients",
        choices=("kernel", "eager"),
        default="kernel",
        help="kernel (default): arrival is the kernel's receive time of each message, and the "
        "clients run at idle priority, on CPU time the servers leave; eager: clients at normal "
        "priority time each message when they read it",
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.counts.split(",")]
    worker_counts = [int(n) for n in args.workers.split(",")]

    results: dict[int, dict[str, Any]] = {}
    with Stack() as stack:
        redis_url = stack.redis()
        sandbox = stack.sandbox(None)
        stack.bot(sandbox, redis_url)
        apis: dict[str, tuple[str, list[int]]] = {}
        for workers in worker_counts:
            url = stack.api(sandbox, redis_url, workers=workers)
            apis[f"workers {workers}"] = (url, [stack.last.pid])
        api = next(iter(apis.values()))[0]
        http = stack.enter_context(httpx.Client(timeout=60, headers=stack.auth))
        fixture = httpx.get(f"{sandbox}/_sandbox/fixture").json()
        guild = fixture["guilds"][0]
        role = next(r["id"] for r in guild["roles"] if r["name"] == "Poll Voters")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the bot has written the guilds through
            body = http.post(f"{api}/graphql", json={"query": "{ botGuilds { id } }"}).json()
            if len(body["data"]["botGuilds"]) == len(fixture["guilds"]) - 1:
                break
            time.sleep(0.2)
        roles = http.post(
            f"{api}/graphql", json={"query": f'{{ pingableRoles(guildId: "{guild["id"]}") {{ id name }} }}'}
        ).json()["data"]["pingableRoles"]
        serve = [sys.executable, "-m", "bench.bare_server", "bench.bare_broadcast:app"]
        bares = {"bare": (stack.spawn_listening(serve), [stack.last.pid])}
        processes = max(worker_counts)
        if processes > 1:
            # Each on its own socket of one port, relaying the broadcast through Redis.
            relay = {"BARE_REDIS_URL": redis_url}
            first = stack.spawn_listening([*serve, "--reuse-port"], relay)
            pids = [stack.last.pid]
            port = first.rsplit(":", 1)[1]
            for _ in range(processes - 1):
                stack.spawn_listening([*serve, "--reuse-port", "--port", port], relay)
                pids.append(stack.last.pid)
            bares[f"bare {processes}"] = (first, pids)
        payload = {"data": {"guildRolesChanged": {"kind": "ROLE_UPDATED", "roleId": role, "version": 1,
                                                  "eventId": "1-0", "pingableRoles": roles}}}  # fmt: skip
        servers = {**apis, **bares}
        context = {
            **{f"{name}_ws": url.replace("http", "ws", 1) + "/graphql" for name, (url, _) in servers.items()},
            **{f"{name}_pids": pids for name, (_, pids) in servers.items()},
            **{f"{name}_fire": f"{url}/fire" for name, (url, _) in bares.items()},
            "sandbox": sandbox,
            "guild": guild["id"],
            "role": role,
            "message": json.dumps({"id": "1", "type": "next", "payload": payload}),
            "http": http,
        }
        for count in counts:
            results[count] = {name: measure(stack, args, count, context, name) for name in servers}

    print(f"One role change to N subscribers ({args.rounds} changes each; latency in ms, end to end)")
    for count, result in results.items():
        print(f"  {count:5d} subscribers")
        for name, measured in result.items():
            if name.startswith("bare"):
                label = f"bare Starlette, {name[5:] or 1} process(es)"
            else:
                label = f"polly api, {name}"
            latency = f"p50 {measured['p50']:7.1f}  p99 {measured['p99']:7.1f}  max {measured['max']:7.1f}"
            rss = " + ".join(f"{value:.0f}" for value in measured["rss"])
            print(f"    {label:28} {latency}   RSS {rss} MiB   missing {measured['missing']}")
            print(f"    {'':28} p99 of each change: {', '.join(f'{v:.1f}' for v in measured['per_change'])}")
            if name.startswith("workers"):
                workers = int(name.split()[-1])
                bare = result.get("bare" if workers == 1 else f"bare {workers}")
                if bare is not None:
                    ratio = measured["p99"] / bare["p99"]
                    print(f"    {'':28} p99 ratio (api / bare, {workers} process(es)): {ratio:.2f}")


if __name__ == "__main__":
    main()
