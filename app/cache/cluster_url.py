"""How ``POLLY_REDIS_URL`` names a Redis Cluster: ``redis+cluster://`` (``rediss+cluster://`` for
TLS) and one or more of its nodes, comma-separated, e.g.
``redis+cluster://user:password@10.0.0.1:7000,10.0.0.2:7000/``.

Parsing only, importing nothing else of the service: settings validate the URL with it before
anything else is set up (prometheus-client, for one, must not be imported that early).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}  # the scheme → TLS


@dataclass(frozen=True)
class ClusterAddress:
    nodes: list[tuple[str, int]]
    username: str | None = None
    password: str | None = None
    tls: bool = False


def is_cluster_url(url: str) -> bool:
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


def parse_cluster_url(url: str) -> ClusterAddress:
    """``redis+cluster://[user:password@]host:port[,host:port...][/]``; raises ValueError with a
    sentence saying what is wrong."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in CLUSTER_SCHEMES:
        raise ValueError(f"{scheme!r} is not a cluster scheme: use redis+cluster:// or rediss+cluster://")
    authority, _, path = rest.partition("/")
    if path.strip("/") not in ("", "0") or "?" in rest or "#" in rest:
        raise ValueError(
            "a cluster URL names nodes only (redis+cluster://host:port,host:port/): a cluster has"
            " database 0 alone, and takes no options"
        )
    userinfo, at, hosts = authority.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username, password = (unquote(user) or None), (unquote(secret) if colon else None)
    nodes: list[tuple[str, int]] = []
    for part in hosts.split(","):
        host, colon, port = part.strip().rpartition(":")
        host = host.strip("[]")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{part.strip()!r} is not a cluster node like 10.0.0.1:7000")
        nodes.append((host, int(port)))
    return ClusterAddress(nodes, username, password, tls=CLUSTER_SCHEMES[scheme.lower()])
