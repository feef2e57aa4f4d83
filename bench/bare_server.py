"""Serves a baseline app (bench/bare_*.py) under uvicorn, as ``uvicorn APP --log-level warning
--no-access-log --ws-per-message-deflate false`` would, but on a port the system picks, and
prints its URL on stdout once listening: ``python -m bench.bare_server bench.bare_endpoint:app``.
"""

from __future__ import annotations

import argparse

import uvicorn

from app.listening import ListeningServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("app", help="the ASGI application, as module:attribute")
    args = parser.parse_args()
    config = uvicorn.Config(
        args.app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        access_log=False,
        ws_per_message_deflate=False,
    )
    ListeningServer(config, announce=lambda url: print(f"listening on {url}", flush=True)).run()


if __name__ == "__main__":
    main()
