"""The image's HEALTHCHECK (`python -m flux_server.healthcheck`); exit 0 healthy, 1 not.

The server (a plain container or a cluster's head) answers /health on PORT. A cluster's worker
node (FLUX_RAY_HEAD set) serves no HTTP at all: its raylet's port stands for it, so that
`docker ps` on a worker says healthy while its Ray node runs, not unhealthy forever.
Light imports only (no torch, no Ray): Docker runs it every 30 s.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

from flux_server.node import DEFAULT_PORT_BASE, NodePorts
from flux_server.tls import loopback_context, loopback_url


def probe(env: Mapping[str, str]) -> str | None:
    """None when healthy, else what is wrong (pure apart from the one connection)."""
    if env.get("FLUX_RAY_HEAD", "").strip():
        host = env.get("FLUX_NODE_IP", "").strip() or "127.0.0.1"
        port = NodePorts(int(env.get("FLUX_RAY_PORT_BASE", "") or DEFAULT_PORT_BASE)).node_manager
        try:
            socket.create_connection((host, port), timeout=4).close()
        except OSError as exc:
            return f"worker node: the raylet does not answer on {host}:{port}: {exc}"
        return None
    url = loopback_url(env, env.get("PORT", "8000"), "/health")
    try:
        with urllib.request.urlopen(url, timeout=4, context=loopback_context()):
            return None
    except (urllib.error.URLError, OSError) as exc:
        return f"{url}: {exc}"


def main() -> int:
    problem = probe(os.environ)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
