"""Serves a baseline app (bench/bare_*.py) under uvicorn, as ``uvicorn APP --log-level warning
--no-access-log --ws-per-message-deflate false [--workers N]`` would, but on a port the system
picks, and prints its URL on stdout once listening:
``python -m bench.bare_server bench.bare_endpoint:app [--workers 2]``. With several workers,
uvicorn's own supervisor runs them on the one socket it binds. With ``--reuse-port`` the process
binds a socket of its own on ``--port`` that others may bind too (SO_REUSEPORT), as each worker of
``polly api --workers`` does: start one on port 0, then the others on the port it printed.
"""

from __future__ import annotations

import argparse

import uvicorn
from uvicorn.supervisors import Multiprocess

from app.api.workers import reuse_port_socket
from app.listening import ListeningServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("app", help="the ASGI application, as module:attribute")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--port", type=int, default=0, help="the port (default 0: one the system picks)")
    parser.add_argument("--reuse-port", action="store_true", help="bind a port other processes share")
    args = parser.parse_args()
    config = uvicorn.Config(
        args.app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        ws_per_message_deflate=False,
        workers=args.workers,
    )
    if args.workers == 1:
        sockets = [reuse_port_socket("127.0.0.1", args.port)] if args.reuse_port else None
        server = ListeningServer(config, announce=lambda url: print(f"listening on {url}", flush=True))
        server.run(sockets=sockets)
        return
    sock = config.bind_socket()
    sock.listen(config.backlog)  # connections wait in the backlog until a worker takes them
    host, port = sock.getsockname()[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    Multiprocess(config, sockets=[sock]).run()


if __name__ == "__main__":
    main()
