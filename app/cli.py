"""The ``polly`` command (also ``python -m app``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from app.settings import Settings, SettingsError, load_settings, secrets_of
from app.telemetry.logs import configure as configure_logging
from app.telemetry.metrics_dir import share_metrics


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polly",
        description="Polly API: a GraphQL backend for Discord poll tools.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sandbox = commands.add_parser(
        "sandbox",
        help="run the local Discord stand-in (REST, gateway and control API)",
        description="Run a local Discord that unmodified discord.py talks to over HTTP and WebSocket.",
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    sandbox.add_argument(
        "--port", type=int, default=8787, help="port to listen on (default 8787; 0: one the system picks)"
    )
    world = sandbox.add_mutually_exclusive_group()
    world.add_argument("--fixture", type=Path, help="JSON fixture file with the bot, users and guilds")
    world.add_argument("--guilds", type=_positive_int, help="generate a fixture of this many guilds instead")
    sandbox.add_argument("--seed", type=int, default=1, help="seed for --guilds (default 1)")
    sandbox.add_argument("--shards", type=_positive_int, help="shard count GET /gateway/bot recommends")
    sandbox.add_argument(
        "--global-limit", type=_positive_int, default=50, help="requests/s per bot (default 50)"
    )
    sandbox.add_argument(
        "--route-limit", type=_positive_int, default=10, help="requests per route bucket window"
    )
    sandbox.add_argument(
        "--route-window", type=_positive_float, default=1.0, help="route bucket window in seconds"
    )
    sandbox.add_argument("--no-rate-limits", action="store_true", help="answer every request (no 429s)")
    sandbox.add_argument(
        "--heartbeat-interval", type=_positive_int, default=41250, help="gateway heartbeat interval in ms"
    )
    sandbox.add_argument(
        "--heartbeat-ack-delay",
        type=_non_negative_int,
        metavar="MS",
        help="ms the gateway waits before a HEARTBEAT_ACK, like a network round trip (default 40)",
    )
    sandbox.add_argument(
        "--dump-fixture",
        action="store_true",
        help="print the fixture as JSON and exit (a start for your own)",
    )
    sandbox.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sandbox.set_defaults(run=run_sandbox, needs_settings=False)

    api = commands.add_parser(
        "api",
        help="run the GraphQL API (Starlette under uvicorn)",
        description="Serve GraphQL at /graphql, /healthz and /readyz. Reads POLLY_* settings.",
    )
    api.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    api.add_argument(
        "--port", type=int, default=8000, help="port to listen on (default 8000; 0: one the system picks)"
    )
    api.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="API processes sharing the port (SO_REUSEPORT); default 1",
    )
    # A worker of `--workers N`: binds the port alongside its siblings.
    api.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    api.set_defaults(run=run_api)

    bot = commands.add_parser(
        "bot",
        help="run the gateway bot that keeps the role cache right and publishes changes",
        description="Connect to Discord's gateway (guilds intent, sharded) and write role changes through"
        " to Redis.",
    )
    bot.set_defaults(run=run_bot)

    demo = commands.add_parser(
        "demo",
        help="run the sandbox, the bot and the API together, with Redis embedded",
        description="The whole stack in one process, no accounts or services to set up; prints the URLs.",
    )
    demo.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8000, help="the API's port (default 8000; 0: any free)")
    demo.add_argument(
        "--sandbox-port",
        type=int,
        default=8787,
        help="the Discord sandbox's port (default 8787; 0: any free)",
    )
    demo.add_argument("--churn", action="store_true", help="rename and toggle roles every few seconds")
    demo.add_argument(
        "--churn-every", type=_positive_float, default=3.0, help="seconds between changes (default 3)"
    )
    demo.add_argument(
        "--heartbeat-interval",
        type=_positive_int,
        default=41250,
        metavar="MS",
        help="the sandbox gateway's heartbeat interval in ms (default 41250, Discord's)",
    )
    demo.add_argument(
        "--redis",
        default="auto",
        choices=["auto", "server", "fakeredis"],
        help="auto: POLLY_REDIS_URL, else a private redis-server if installed, else fakeredis (default)",
    )
    demo.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="API worker processes (default 2 with a real Redis, 1 with fakeredis)",
    )
    demo.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    demo.set_defaults(run=run_demo, needs_settings=False)

    _add_keys_parser(commands)
    _add_db_parser(commands)
    return parser


def _add_keys_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser(
        "keys",
        help="create, list and revoke API keys",
        description="API keys for scripts and bots, kept in the database (POLLY_DATABASE_URL, else"
        " SQLite in POLLY_DATA_DIR); each command migrates the database first if needed.",
    )
    actions = keys.add_subparsers(dest="keys_command", metavar="KEYS_COMMAND", required=True)
    create = actions.add_parser(
        "create",
        help="make a key and print its token (shown only this once)",
        description="Make an API key for some guilds and scopes and print its token, which cannot be"
        " shown again.",
    )
    create.add_argument(
        "--guild", action="append", metavar="ID", help="a Discord server id the key may be used for (repeat)"
    )
    create.add_argument(
        "--scope",
        action="append",
        metavar="SCOPE",
        help="what the key may do, e.g. roles:read (repeat; an unknown one lists them all)",
    )
    create.add_argument("--name", metavar="TEXT", help="a label to tell keys apart")
    create.add_argument("--json", action="store_true", help="print JSON (token included) for scripts")
    listing = actions.add_parser(
        "list", help="show every key (never a secret)", description="Show every API key, newest first."
    )
    listing.add_argument("--json", action="store_true", help="print JSON for scripts")
    revoke = actions.add_parser(
        "revoke",
        help="stop a key from working, at once",
        description="Mark a key revoked and delete the API's cached copy of it from Redis.",
    )
    revoke.add_argument("key_id", metavar="KEY_ID", help="the key's id, as `polly keys list` shows it")
    keys.set_defaults(run=run_keys)


def _add_db_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = commands.add_parser(
        "db",
        help="migrate the database, as a deployment step of its own",
        description="The database of POLLY_DATABASE_URL (else SQLite in POLLY_DATA_DIR). polly api,"
        " polly bot and polly keys migrate it at start too; this runs the migrations alone, before"
        " anything else starts.",
    )
    actions = db.add_subparsers(dest="db_command", metavar="DB_COMMAND", required=True)
    actions.add_parser(
        "upgrade",
        help="migrate the database to the newest revision (nothing to do if it is there)",
        description="Create or migrate the tables to the newest revision and exit; safe to run from"
        " several places at once, and again.",
    )
    db.set_defaults(run=run_db)


def run_db(args: argparse.Namespace, settings: Settings) -> int:
    from app.settings import database_url
    from app.storage.database import Database, DatabaseError

    async def upgrade() -> str:
        database = Database(database_url(settings))
        try:
            await database.upgrade()
        finally:
            await database.close()
        return database.url

    try:
        url = asyncio.run(upgrade())
    except DatabaseError as error:
        print(f"polly db {args.db_command}: {error}", file=sys.stderr)
        return 2
    print(f"Database at {url} is at the newest revision.", flush=True)
    return 0


def run_keys(args: argparse.Namespace, settings: Settings) -> int:
    # Only what the command needs: `polly keys` is started by hand and by scripts, and the
    # live parts (the access watch, principals, discord.py) would double its start-up time.
    from app.cache.access_cache import access_change
    from app.cache.keys import CacheKeys
    from app.settings import database_url
    from app.storage.keys_command import KeysTarget, run_keys_command

    keys = CacheKeys(settings.cache_prefix)
    target = KeysTarget(
        database_url=database_url(settings),
        redis_url=str(settings.redis_url),
        cache_key=keys.api_key,
        cache_ttl=settings.api_key_cache_ttl,
        revoked=lambda key_id: (keys.access_changes(), access_change("API_KEY", key_id)),
    )
    return run_keys_command(args, target)


def run_demo(args: argparse.Namespace, settings: Settings | None) -> int:
    from app.demo import DemoOptions
    from app.demo import run_demo as serve

    options = DemoOptions(
        host=args.host,
        port=args.port,
        sandbox_port=args.sandbox_port,
        churn=args.churn,
        churn_every=args.churn_every,
        redis=args.redis,
        heartbeat_interval_ms=args.heartbeat_interval,
        workers=args.workers,
        log_level=args.log_level,
    )
    try:
        asyncio.run(serve(options))
    except OSError as error:
        print(f"polly demo: cannot start: {error.strerror or error}.", file=sys.stderr)
        return 2
    return 0


def run_bot(args: argparse.Namespace, settings: Settings) -> int:
    from app.bot.runner import BotLoginRefused
    from app.bot.runner import run_bot as serve
    from app.telemetry import exposition

    metrics_server = None
    if settings.bot_metrics_port is not None:
        try:
            metrics_server = exposition.serve_on_port(settings.bot_metrics_port, settings.bot_metrics_host)
        except OSError as error:
            print(
                f"polly bot: cannot serve metrics on {settings.bot_metrics_host}:{settings.bot_metrics_port}"
                f" ({error.strerror or error}); set POLLY_BOT_METRICS_PORT to a free port, or empty for"
                " none.",
                file=sys.stderr,
            )
            return 2
        host, port = str(metrics_server.server_address[0]), metrics_server.server_address[1]
        # Printed: with port 0 this is how a supervisor or a test learns the port.
        print(f"Polly bot metrics on http://{host}:{port}/metrics", flush=True)
    try:
        asyncio.run(serve(settings))
    except (SettingsError, BotLoginRefused) as error:
        print(f"polly bot: {error}", file=sys.stderr)
        return 2
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
    return 0


def _exit_stopped(signum: int, frame: FrameType | None) -> None:
    """Exit 0 on SIGTERM (a requested stop), 130 on SIGINT (Ctrl+C, as shells report it)."""
    raise SystemExit(0 if signum == signal.SIGTERM else 128 + signum)


def run_api(args: argparse.Namespace, settings: Settings) -> int:
    from app.api.app import create_app, server_config
    from app.discord.client import DiscordRest, DiscordRestError, DiscordUnauthorized
    from app.listening import ListeningServer
    from app.settings import require_secret_key, require_token

    try:
        token = require_token(settings)
        require_secret_key(settings)
    except SettingsError as error:
        print(f"polly api: {error}", file=sys.stderr)
        return 2

    async def check_token() -> None:
        rest = DiscordRest(
            api_url=str(settings.discord_api_url), token=token, timeout=settings.discord_timeout
        )
        try:
            await rest.open()
        finally:
            await rest.close()

    try:
        if not args.reuse_port:  # a worker's supervisor checked already
            asyncio.run(check_token())
    except DiscordUnauthorized:
        print(
            f"polly api: Discord at {settings.discord_api_url} refused POLLY_DISCORD_TOKEN; "
            "set it to the bot's token.",
            file=sys.stderr,
        )
        return 2
    except DiscordRestError as error:
        # Not fatal: the API starts degraded, and its startup logs this in the configured format.
        logging.getLogger(__name__).debug("Discord did not answer the token check: %s", error)

    if args.workers > 1:
        from app.api.workers import run_workers

        return run_workers(args.workers, args.host, args.port, settings.metrics_dir)
    sockets = None
    if args.reuse_port:
        from app.api.workers import reuse_port_socket

        sockets = [reuse_port_socket(args.host, args.port)]
    config = server_config(
        create_app(settings), settings, host=args.host, port=args.port, log_level=settings.log_level.lower()
    )
    # Printed, not logged: uvicorn's own "running on" line is INFO, gone at POLLY_LOG_LEVEL=WARNING,
    # and with --port 0 this line is how a supervisor or a test learns the port.
    server = ListeningServer(config, announce=lambda url: print(f"Polly API listening on {url}", flush=True))
    # uvicorn shuts down gracefully on SIGTERM and SIGINT, then raises the signal again for the
    # handler it found: with the default one, a stop that went as asked would end the process
    # as killed (status -15). Ours ends it with the status a supervisor expects.
    signal.signal(signal.SIGTERM, _exit_stopped)
    signal.signal(signal.SIGINT, _exit_stopped)
    server.run(sockets=sockets)
    # uvicorn ends with "Application startup failed" when the lifespan could not open what the
    # API needs (the database, most likely); the reason is logged above.
    return 0 if server.started else 3


def run_sandbox(args: argparse.Namespace, settings: Settings | None) -> int:
    from app.sandbox.builtin import default_fixture, generated_fixture
    from app.sandbox.fixture import FixtureError, load_fixture
    from app.sandbox.gateway import HEARTBEAT_ACK_DELAY_MS
    from app.sandbox.ratelimit import RateLimitConfig
    from app.sandbox.server import Sandbox

    try:
        if args.fixture is not None:
            fixture = load_fixture(args.fixture)
        elif args.guilds is not None:
            fixture = generated_fixture(args.guilds, seed=args.seed)
        else:
            fixture = default_fixture()
    except FixtureError as error:
        print(f"polly sandbox: {error}", file=sys.stderr)
        return 2
    if args.shards is not None:
        fixture = fixture.model_copy(update={"shards": args.shards})
    if args.dump_fixture:
        print(json.dumps(fixture.model_dump(mode="json"), indent=2, ensure_ascii=False))
        return 0

    limits = RateLimitConfig(
        global_per_second=args.global_limit,
        route_limit=args.route_limit,
        route_window=args.route_window,
        enabled=not args.no_rate_limits,
    )
    sandbox = Sandbox(
        fixture,
        rate_limits=limits,
        heartbeat_interval_ms=args.heartbeat_interval,
        heartbeat_ack_delay_ms=(
            HEARTBEAT_ACK_DELAY_MS if args.heartbeat_ack_delay is None else args.heartbeat_ack_delay
        ),
    )

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await sandbox.start(args.host, args.port)
        except OSError as error:
            raise SystemExit(
                f"polly sandbox: cannot listen on {args.host}:{args.port}: {error.strerror}."
            ) from None
        guilds = len(sandbox.state.guilds)
        print(
            f"Discord sandbox on {sandbox.url}\n"
            f"  REST     {sandbox.api_url}\n"
            f"  gateway  {sandbox.gateway_url}\n"
            f"  control  {sandbox.url}/_sandbox/fixture, /_sandbox/stats, /_sandbox/faults\n"
            f"  bot token: {fixture.bot.token}   guilds: {guilds}\n"
            "Press Ctrl+C to stop.",
            flush=True,
        )
        await stop.wait()
        await sandbox.stop()

    asyncio.run(serve())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = None
    if getattr(args, "needs_settings", True):
        # Only the commands that use POLLY_* settings check them: the sandbox is not
        # stopped by a setting it never reads.
        try:
            settings = load_settings()
        except SettingsError as error:
            print(f"polly {args.command}: {error}", file=sys.stderr)
            return 2
    if settings is not None:
        # Before anything imports prometheus-client (it reads this when imported).
        share_metrics(settings.metrics_dir)
        configure_logging(settings.log_level, settings.log_format, secrets=secrets_of(settings))
    else:
        configure_logging(args.log_level)
    result: int = args.run(args, settings)
    return result
