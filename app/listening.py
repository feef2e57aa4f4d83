"""uvicorn servers that say where they listen, so whoever starts one can ask for port 0.

A port picked free and bound later can be taken by another process in between; a server given
port 0 binds one the system picks, free by construction, and then reports it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import uvicorn


class ListeningServer(uvicorn.Server):
    """uvicorn's server, with ``listening`` set once it accepts connections (uvicorn itself only
    flips a flag) and ``url`` naming the address it got; ``announce`` is called with that URL."""

    def __init__(self, config: uvicorn.Config, *, announce: Callable[[str], None] | None = None) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()
        self.announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's startup returns only once it listens (a failure exits the process instead).
        await super().startup(sockets=sockets)
        self.listening.set()
        if self.announce is not None:
            self.announce(self.url)

    @property
    def url(self) -> str:
        """``http://host:port`` of the first listening socket, as bound (the real port for 0)."""
        address = self.servers[0].sockets[0].getsockname()
        host, port = address[0], address[1]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    async def serve_in_task(self, sockets: list[socket.socket] | None = None) -> asyncio.Task[None]:
        """Serve in a task of the running loop, returned once listening; what stopped it
        before then is raised instead."""
        serving = asyncio.create_task(self.serve(sockets=sockets))
        listening = asyncio.create_task(self.listening.wait())
        await asyncio.wait({serving, listening}, return_when=asyncio.FIRST_COMPLETED)
        if not self.listening.is_set():
            listening.cancel()
            serving.result()
            raise RuntimeError("uvicorn stopped before it listened")
        return serving
