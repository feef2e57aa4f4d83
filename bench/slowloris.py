"""A normal client's latency while slowloris clients trickle request heads at ``polly api``,
next to the same client's latency with nobody else about, in one run.

Three phases, each ``--seconds`` long, against one ``polly api`` process with the default
transport limits (POLLY_HEADER_TIMEOUT 10 s, POLLY_MAX_CONNECTIONS_PER_ADDRESS 64):

- quiet: the normal client alone;
- one address: ``--connections`` slow connections from 127.0.0.1. Each sends a request line,
  then a header byte every ``--interval`` seconds, never the end of its head; as the original
  slowloris tool does, the attacker opens a new connection for each one that ends, once per
  interval;
- spread: the same connections from ``--addresses`` addresses (127.0.1.x), each under the
  per-address limit, so that only the head deadline bounds them.

The normal client (127.0.0.2) asks a cached pingableRoles query with an API key ten times a
second, each on a new connection (the slowloris' target is the accepting of connections),
and its latency is printed for each phase with the ratio to the quiet phase's. Also printed:
what the attacker held at once and for how long at most, what it was answered, and the API's
RSS.

Run: bench/slowloris [--connections 2000] [--addresses 50] [--seconds 30] [--interval 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.processes import Stack

QUERY = "query($g: ID!) { pingableRoles(guildId: $g) { id name } }"
CLIENT_ADDRESS = "127.0.0.2"
CLIENT_RATE = 10.0  # requests a second


# -- the attacker (a process of its own, so that it takes no time from the measuring client) ------


async def attack(url: str, connections: int, addresses: list[str], interval: float) -> None:
    """Hold ``connections`` slow connections until stdin closes, then print what happened."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    stats: dict[str, Any] = {"opened": 0, "answers": {}, "longest": 0.0, "held": [], "errors": 0}
    open_since: dict[int, float] = {}  # connections open and not yet answered: since when
    stop = asyncio.Event()

    async def one(number: int, local: str) -> None:
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(host, int(port), local_addr=(local, 0))
            except OSError:
                stats["errors"] += 1
                await asyncio.sleep(interval)
                continue
            stats["opened"] += 1
            opened = open_since[number] = time.monotonic()
            answer = "still held at the end"
            try:
                writer.write(b"GET /graphql HTTP/1.1\r\nHost: polly\r\nX-Slow: ")
                reply = asyncio.ensure_future(reader.read(64))
                while not stop.is_set():
                    done, _ = await asyncio.wait({reply}, timeout=interval)
                    if done:
                        first = reply.result()
                        answer = (
                            first[9:12].decode() if first.startswith(b"HTTP/1.1 ") else "closed unanswered"
                        )
                        break
                    writer.write(b"a")  # one more byte of a head that never ends
                reply.cancel()
            except OSError:
                answer = "reset"
            finally:
                del open_since[number]
                stats["longest"] = max(stats["longest"], time.monotonic() - opened)
                stats["answers"][answer] = stats["answers"].get(answer, 0) + 1
                writer.close()
            if not stop.is_set():
                await asyncio.sleep(interval)  # the next round opens it again

    async def sample() -> None:
        # Held: open for a whole interval with no answer yet (a refusal is answered at once, and
        # a wave of reconnections between connect and reading its 429 is not held).
        while not stop.is_set():
            now = time.monotonic()
            stats["held"].append(sum(1 for since in open_since.values() if now - since >= interval))
            await asyncio.sleep(0.5)

    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    tasks = [asyncio.create_task(one(n, addresses[n % len(addresses)])) for n in range(connections)]
    sampler = asyncio.create_task(sample())
    print("ready", flush=True)
    await stdin_closed
    stop.set()
    await asyncio.gather(*tasks, sampler, return_exceptions=True)
    print(json.dumps(stats), flush=True)


# -- the measuring side ----------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Phase:
    def __init__(self, name: str) -> None:
        self.name = name
        self.latencies: list[float] = []
        self.failures: dict[str, int] = {}
        self.rss: list[float] = []
        self.attacker: dict[str, Any] | None = None


def measure(api: str, auth: dict[str, str], guild: str, seconds: float, phase: Phase, pid: int) -> None:
    """The normal client: CLIENT_RATE requests a second, each on a new connection."""
    transport = httpx.HTTPTransport(local_address=CLIENT_ADDRESS)
    limits = httpx.Limits(max_keepalive_connections=0)
    body = {"query": QUERY, "variables": {"g": guild}}
    with httpx.Client(transport=transport, limits=limits, headers=auth, timeout=30) as client:
        started = time.monotonic()
        sent = 0
        while (now := time.monotonic()) < started + seconds:
            time.sleep(max(0.0, started + sent / CLIENT_RATE - now))  # pacing the client
            sent += 1
            begun = time.perf_counter()
            try:
                response = client.post(f"{api}/graphql", json=body)
            except httpx.HTTPError as error:
                kind = type(error).__name__
                phase.failures[kind] = phase.failures.get(kind, 0) + 1
                continue
            took = (time.perf_counter() - begun) * 1000
            if response.status_code == 200 and "errors" not in response.json():
                phase.latencies.append(took)
            else:
                key = f"HTTP {response.status_code}"
                phase.failures[key] = phase.failures.get(key, 0) + 1
            if sent % 10 == 0:
                phase.rss.append(rss_mib(pid))


def run_phase(
    stack: Stack,
    api: str,
    pid: int,
    guild: str,
    phase: Phase,
    args: argparse.Namespace,
    addresses: list[str] | None,
) -> None:
    attacker = None
    if addresses is not None:
        attacker = stack.spawn(
            [sys.executable, "-m", "bench.slowloris", "--attack", api, str(args.connections),
             ",".join(addresses), str(args.interval)],
            stdout=subprocess.PIPE,
            stdin=subprocess.PIPE,
        )  # fmt: skip
        assert attacker.stdout is not None
        if attacker.stdout.readline().strip() != b"ready":
            raise SystemExit("the slowloris process did not start")
        time.sleep(2 * args.interval)  # its connections all opened before measuring
    measure(api, stack.auth, guild, args.seconds, phase, pid)
    if attacker is not None:
        assert attacker.stdin is not None and attacker.stdout is not None
        attacker.stdin.close()
        phase.attacker = json.loads(attacker.stdout.readline())
        attacker.wait(timeout=60)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(phases: list[Phase], args: argparse.Namespace) -> None:
    quiet = phases[0]
    base_p50, base_p99 = statistics.median(quiet.latencies), percentile(quiet.latencies, 0.99)
    print(
        f"Normal client ({CLIENT_ADDRESS}): a cached pingableRoles query with an API key, "
        f"{CLIENT_RATE:g}/s on a new connection each, {args.seconds:g} s a phase"
    )
    for phase in phases:
        p50, p99 = statistics.median(phase.latencies), percentile(phase.latencies, 0.99)
        failed = ", ".join(f"{n} {kind}" for kind, n in sorted(phase.failures.items())) or "none failed"
        print(
            f"  {phase.name:32} p50 {p50:6.2f} ms ({p50 / base_p50:4.2f}x)  p99 {p99:6.2f} ms"
            f" ({p99 / base_p99:4.2f}x)  max {max(phase.latencies):6.2f} ms  {len(phase.latencies)} answered,"
            f" {failed}; API RSS {max(phase.rss, default=0):.0f} MiB"
        )
    print(f"Slowloris: {args.connections} connections, a header byte every {args.interval:g} s")
    for phase in phases[1:]:
        attacker = phase.attacker or {}
        held = attacker.get("held") or [0]
        answers = ", ".join(f"{n} {kind}" for kind, n in sorted(attacker.get("answers", {}).items()))
        print(
            f"  {phase.name:32} held (open {args.interval:g} s unanswered): median"
            f" {statistics.median(held):.0f}, peak {max(held)};"
            f" longest held {attacker.get('longest', 0):.1f} s; {attacker.get('opened', 0)} opened;"
            f" answered: {answers or 'nothing'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=2000, help="slow connections (default 2000)")
    parser.add_argument(
        "--addresses", type=int, default=50, help="addresses of the spread phase (default 50, at most 254)"
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each phase (default 30)")
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between a slow connection's bytes (default 1)"
    )
    parser.add_argument(
        "--attack", nargs=4, metavar=("URL", "N", "ADDRESSES", "INTERVAL"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.attack is not None:
        url, count, addresses, interval = args.attack
        asyncio.run(attack(url, int(count), addresses.split(","), float(interval)))
        return

    phases = [
        Phase("quiet"),
        Phase("slowloris from one address"),
        Phase(f"spread over {args.addresses} addresses"),
    ]
    with Stack() as stack:
        redis_url = stack.redis()
        sandbox = stack.sandbox(None)
        # The defaults a deployment runs with (bench/processes.py lifts the connection limit).
        api = stack.api(
            sandbox, redis_url, max_connections_per_address="64", header_timeout="10", body_timeout="30"
        )
        pid = stack.last.pid
        guild = httpx.get(f"{sandbox}/_sandbox/fixture").json()["guilds"][0]["id"]
        httpx.post(f"{api}/graphql", json={"query": QUERY, "variables": {"g": guild}}, headers=stack.auth)
        spread = [f"127.0.1.{n + 1}" for n in range(args.addresses)]
        for phase, addresses in zip(phases, (None, ["127.0.0.1"], spread), strict=True):
            print(f"{phase.name} ...", file=sys.stderr, flush=True)
            run_phase(stack, api, pid, guild, phase, args, addresses)
    report(phases, args)


if __name__ == "__main__":
    main()
