"""How fast abusive requests are turned away: the server's own time (its Server-Timing header)
for each abuse case the access issue names, next to a plain cached query in the same run.

Then what one caller within the default rate limit can make the server spend a second on
documents it gets refused, next to a cached query.

Run: bench/abuse [--repeats 20] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.processes import Stack

TIMING = re.compile(r"app;dur=([\d.]+)")


def server_ms(response: httpx.Response) -> float:
    match = TIMING.search(response.headers.get("server-timing", ""))
    if match is None:
        raise SystemExit("no Server-Timing header: is this polly api?")
    return float(match[1])


def cases(guild: str) -> dict[str, Callable[[httpx.Client, str], httpx.Response]]:
    deep = "{ __schema { types { " + "fields { type { " * 25 + "name" + " } }" * 25 + " } } }"
    aliases = "{ " + " ".join(f"a{n}: apiVersion" for n in range(1000)) + " }"
    tokens = "{ " + " ".join("a" for _ in range(20_000)) + " }"  # 40 kB: under the body limit
    normal = {"query": "query($g: ID!) { pingableRoles(guildId: $g) { id name } }", "variables": {"g": guild}}
    repeated = "{ " + "viewer { id } " * 390 + "}"  # within every limit; pairwise field merging
    spreads = ["fragment F0 on Query { apiVersion }"]
    spreads += [f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, 41)]
    role_ids = {
        "query": "query($g: ID!, $r: [ID!]!) { validateRoles(guildId: $g, roleIds: $r) { roleId } }",
        "variables": {"g": guild, "r": [str(n) for n in range(9000)]},
    }
    deep_variables = (
        b'{"query": "query($g: ID!) { guildRoles(guildId: $g) { id } }", "variables": {"g": '
        + b"[" * 5000
        + b"]" * 5000
        + b"}}"
    )

    def post(body: Any) -> Callable[[httpx.Client, str], httpx.Response]:
        return lambda client, url: client.post(url, json=body)

    def raw(content: bytes, content_type: str) -> Callable[[httpx.Client, str], httpx.Response]:
        return lambda client, url: client.post(url, content=content, headers={"Content-Type": content_type})

    return {
        "a cached query (baseline)": post(normal),
        "nested 50 deep": post({"query": deep}),
        "1,000 aliases": post({"query": aliases}),
        "2 MB body": raw(
            json.dumps({"query": "{ apiVersion }", "pad": "x" * 2_000_000}).encode(), "application/json"
        ),
        "20,000 tokens": post({"query": tokens}),
        "malformed JSON": raw(b'{"query": ', "application/json"),
        "wrong content type": raw(b"{ apiVersion }", "text/plain"),
        "one field 390 times": post({"query": repeated}),
        "2^40 fragment spreads": post({"query": "{ ...F40 }\n" + "\n".join(spreads)}),
        "9,000 role ids": post(role_ids),
        "variables 5,000 deep": raw(deep_variables, "application/json"),
    }


def over_the_rate(api: str, auth: dict[str, str], repeats: int) -> list[float]:
    """Server time of 429s: a caller past its burst (a key of its own, burst 5)."""
    times = []
    with httpx.Client(headers=auth, timeout=30) as client:
        for _ in range(repeats + 10):
            response = client.post(f"{api}/graphql", json={"query": "{ apiVersion }"})
            if response.status_code == 429:
                times.append(server_ms(response))
    return times


def spend_per_second(
    api: str, auth: dict[str, str], body: dict[str, Any], seconds: float
) -> tuple[float, float, int]:
    """One caller sending ``body`` back to back for ``seconds``: the server time a second it
    caused on answers (Server-Timing), on its 429s apart (what refusing any flood costs), and
    how many answers were not 429."""
    answered, limited, served = 0.0, 0.0, 0
    with httpx.Client(headers=auth, timeout=30) as client:
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            response = client.post(f"{api}/graphql", json=body)
            if response.status_code == 429:
                limited += server_ms(response)
            else:
                answered += server_ms(response)
                served += 1
        elapsed = time.monotonic() - started
    return answered / elapsed, limited / elapsed, served


def one_callers_spend(stack: Stack, sandbox: str, redis_url: str, guild: str, seconds: float) -> list[str]:
    """What one caller within the default rate limit (burst 60, 20/s) can make the server spend
    a second: on a cached query, and on a 22 KB document refused after its parse, with refusals
    charged to its rate limit (the default) and without (the charge made negligible)."""
    refused = {"query": "{ " + "apiVersion " * 1990 + "}"}  # 1,992 tokens; one field 1,990 times
    cached = {"query": "query($g: ID!) { pingableRoles(guildId: $g) { id name } }", "variables": {"g": guild}}
    defaults = {"rate_limit_burst": "60", "rate_limit_per_second": "20"}
    charged = stack.api(sandbox, redis_url, **defaults)
    free = stack.api(sandbox, redis_url, **defaults, rejected_document_ms="1000000")
    lines = []
    for label, api, body in (
        ("cached query", charged, cached),
        ("refused 22 KB document, refusals not charged", free, refused),
        ("refused 22 KB document, charged (default)", charged, refused),
    ):
        # Each case from a full bucket (the one key's bucket is shared): from the deepest debt
        # (-burst), a refill takes 2 * burst / rate seconds.
        time.sleep(2 * 60 / 20 + 0.5)
        answered, limited, served = spend_per_second(api, stack.auth, body, seconds)
        lines.append(
            f"  {label:46} {answered:6.1f} ms a second on {served:4} answers, {limited:6.1f} ms on its 429s"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=20, help="requests per case (default 20)")
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="how long one caller sends, per spend case (default 10)"
    )
    args = parser.parse_args()
    with Stack() as stack:
        redis_url = stack.redis()
        sandbox = stack.sandbox(None)
        api = stack.api(sandbox, redis_url)
        guild = httpx.get(f"{sandbox}/_sandbox/fixture").json()["guilds"][0]["id"]
        rows = []
        # A client of today, whose request errors come back with their 4xx status.
        accept = {"Accept": "application/graphql-response+json, application/json"}
        with httpx.Client(headers={**accept, **stack.auth}, timeout=30) as client:
            for name, send in cases(guild).items():
                send(client, f"{api}/graphql")  # warm: the baseline's cache entry, code paths
                responses = [send(client, f"{api}/graphql") for _ in range(args.repeats)]
                times = [server_ms(response) for response in responses]
                code = _code(responses[-1])
                rows.append((name, responses[-1].status_code, code, statistics.median(times), max(times)))
        limited_api = stack.api(sandbox, redis_url, rate_limit_burst="5", rate_limit_per_second="1")
        limited = over_the_rate(limited_api, stack.auth, args.repeats)
        rows.append(("past the rate limit", 429, "RATE_LIMITED", statistics.median(limited), max(limited)))
        rows.append(_chunked(api, stack.auth))
        spend = one_callers_spend(stack, sandbox, redis_url, guild, args.seconds)

    print(f"Server time (Server-Timing) of each abuse case, {args.repeats} requests each; target < 100 ms")
    baseline = rows[0][3]
    for name, status, code, median, worst in rows:
        print(f"  {name:28} {status}  {code:26} median {median:7.2f} ms  max {worst:7.2f} ms"
              f"  ({median / baseline:5.1f}x the cached query)")  # fmt: skip
    print(f"One caller within the default rate limit, {args.seconds:.0f} s each:")
    print("\n".join(spend))


def _chunked(api: str, auth: dict[str, str]) -> tuple[str, int, str, float, float]:
    """A 2 MB chunked body (no Content-Length), sent over a raw socket: refused as it passes the limit."""
    parts = urlsplit(api)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        head = (
            f"POST /graphql HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            f"Authorization: {auth['Authorization']}\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sock.sendall(head.encode())
        chunk = b"x" * 65536
        reply = b""
        for _ in range(32):
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                break
        sock.settimeout(10)
        while b"\r\n\r\n" not in reply:
            reply += sock.recv(65536)
    status = int(reply.split(b" ", 2)[1])
    took = float(TIMING.search(reply.decode("latin-1"))[1])  # type: ignore[index]
    return ("2 MB chunked body", status, "BAD_REQUEST", took, took)


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json()["errors"][0]["extensions"]["code"])
    except (ValueError, KeyError, IndexError, TypeError):
        return "-" if response.status_code < 400 else "(no body)"


if __name__ == "__main__":
    main()
