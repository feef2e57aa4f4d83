"""A private Redis Cluster: Debian's redis-server processes on loopback, keeping nothing on disk.

Three masters with a replica each by default, created with ``redis-cli --cluster create``, for
the tests (and the demo or benchmarks, should they want one). ``stop_master`` kills a master
the way a crash does and returns once its replica took over and every node agrees: with a node
timeout of a second that takes a few seconds.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from app.redis_server import RedisServer, RedisServerError, unused_port

SLOTS = 16384
POLL_INTERVAL = 0.05


class ClusterNodeServer(RedisServer):
    """One redis-server of the cluster: a ``RedisServer`` with cluster mode on."""

    def __init__(self, directory: Path, *, node_timeout_ms: int, executable: str | None = None) -> None:
        super().__init__(directory, executable=executable)
        self.node_timeout_ms = node_timeout_ms
        # The cluster bus's port, named rather than redis-server's default of port + 10000,
        # which does not exist for the high ports the system hands out.
        self.bus_port = unused_port()

    def command(self) -> list[str]:
        return [
            *super().command(),
            "--cluster-enabled", "yes",
            "--cluster-config-file", f"nodes-{self.port}.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--cluster-port", str(self.bus_port),
            # A replica takes over however long ago it last heard from its master: a test's
            # failover must not depend on how recently the two spoke.
            "--cluster-replica-validity-factor", "0",
            # A replica's first sync starts at once, not after the 5 s a master otherwise waits
            # for more replicas to share it.
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)


class LocalCluster:
    def __init__(
        self,
        directory: Path,
        *,
        masters: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = 1000,
        executable: str | None = None,
    ) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RedisServerError("redis-cli is not installed: apt-get install redis-tools.")
        self.cli = cli
        self.masters = masters
        self.replicas = replicas
        self.nodes = [
            ClusterNodeServer(directory / f"node-{n}", node_timeout_ms=node_timeout_ms, executable=executable)
            for n in range(masters * (1 + replicas))
        ]

    @property
    def url(self) -> str:
        """``POLLY_REDIS_URL`` for this cluster: every node, so that any survivor can be asked."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes) + "/"

    def start(self, within: float = 60.0) -> None:
        """Start every node, make them one cluster, and wait until it serves every slot with
        each replica in sync (blocking: for synchronous callers)."""
        deadline = time.monotonic() + within
        try:
            for node in self.nodes:
                node.start()
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            create = [self.cli, "--cluster", "create", *addresses, "--cluster-replicas", str(self.replicas)]
            created = subprocess.run(
                [*create, "--cluster-yes"],
                capture_output=True,
                timeout=max(1.0, deadline - time.monotonic()),
                check=False,
            )
            if created.returncode != 0:
                said = (created.stdout + created.stderr).decode(errors="replace").strip().splitlines()
                raise RedisServerError(f"redis-cli could not create the cluster: {' / '.join(said[-3:])}.")
            self._wait(self._settled, deadline, "the cluster to serve every slot")
        except BaseException:
            self.stop()
            raise

    async def start_async(self, within: float = 60.0) -> None:
        await asyncio.to_thread(self.start, within)

    def _ask(self, node: ClusterNodeServer, *command: str) -> object:
        with node.client() as client:
            return client.execute_command(*command)

    def _info(self, node: ClusterNodeServer) -> dict[str, str]:
        raw = self._ask(node, "CLUSTER", "INFO")
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def _owners(self, node: ClusterNodeServer) -> dict[int, int]:
        """The master port of every slot, as ``node`` sees it."""
        owners: dict[int, int] = {}
        raw = self._ask(node, "CLUSTER", "SLOTS")
        for first, last, master, *_ in raw if isinstance(raw, list) else []:
            for slot in range(int(first), int(last) + 1):
                owners[slot] = int(master[1])
        return owners

    def _settled(self) -> bool:
        """Every running node says the cluster is ok and sees every slot on a running master,
        and every running replica is in sync with its master."""
        running = {node.port for node in self.nodes if node.running}
        try:
            for node in self.nodes:
                if not node.running:
                    continue
                if self._info(node).get("cluster_state") != "ok":
                    return False
                owners = self._owners(node)
                if len(owners) != SLOTS or not set(owners.values()) <= running:
                    return False
                role = self._ask(node, "ROLE")
                if isinstance(role, list) and role[0] == b"slave" and role[3] != b"connected":
                    return False
        except (redis.RedisError, OSError):
            return False
        return True

    def _wait(self, condition: Callable[[], bool], deadline: float, what: str) -> None:
        while not condition():
            if time.monotonic() > deadline:
                logs = self.nodes[0].directory.parent
                raise RedisServerError(f"Gave up waiting for {what}; see the logs in {logs}.")
            time.sleep(POLL_INTERVAL)

    def master_of(self, key: str) -> ClusterNodeServer:
        """The node that is master of ``key``'s slot now."""
        node = next(node for node in self.nodes if node.running)
        slot = int(str(self._ask(node, "CLUSTER", "KEYSLOT", key)))
        port = self._owners(node)[slot]
        return next(node for node in self.nodes if node.port == port)

    def stop_master(self, master: ClusterNodeServer, within: float = 30.0) -> ClusterNodeServer:
        """Kill ``master`` (SIGKILL, as a crash) and wait until a replica took over its slots
        and every running node agrees; returns the promoted replica."""
        probe = next(node for node in self.nodes if node.running and node is not master)
        slots = [slot for slot, port in self._owners(probe).items() if port == master.port]
        assert master.process is not None
        master.process.kill()
        master.stop()
        self._wait(self._settled, time.monotonic() + within, f"a replica of port {master.port} to take over")
        port = self._owners(probe)[slots[0]]
        return next(node for node in self.nodes if node.port == port)

    async def stop_master_async(self, master: ClusterNodeServer, within: float = 30.0) -> ClusterNodeServer:
        return await asyncio.to_thread(self.stop_master, master, within)

    def flush(self) -> None:
        """Empty every master (replicas follow)."""
        for node in self.nodes:
            if not node.running:
                continue
            role = self._ask(node, "ROLE")
            if isinstance(role, list) and role[0] == b"master":
                self._ask(node, "FLUSHALL")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
