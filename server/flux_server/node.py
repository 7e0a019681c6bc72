"""One node of a scale-out cluster, in the bundled image (imported only on that path):

    python -m flux_server.node head     # Ray head + the endpoint (python -m flux_server)
    python -m flux_server.node worker   # a Ray worker that joins FLUX_RAY_HEAD

Every Ray port is pinned inside one range from FLUX_RAY_PORT_BASE (default 6379: 6379-6499,
the range the CLI's firewall rules open to the cluster's own nodes, docs/contract.md); the
dashboard listens on 127.0.0.1 only. Ray 2.60 authenticates its RPCs with a token: give
every node the cluster's token as RAY_AUTH_TOKEN (a secret: the CLI's 0600 env file, never
argv) and token mode is switched on. SIGTERM or SIGINT stops Ray's processes of this node,
`ray start`'s whole process group (never `ray stop`, which would stop every Ray on the
machine); in the CLI's containers the container's end takes any straggler with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flux_server.config import SettingsError

DEFAULT_PORT_BASE = 6379


@dataclass(frozen=True)
class NodePorts:
    """Ray's ports for one node, all in [base, base + 120]; the dashboard outside it."""

    base: int = DEFAULT_PORT_BASE
    dashboard: int = 8265

    @property
    def gcs(self) -> int:
        return self.base

    @property
    def node_manager(self) -> int:
        """The raylet's port: what a worker node's health check knocks on."""
        return self.base + 1

    def range(self) -> tuple[int, int]:
        return (self.base, self.base + 120)

    def args(self) -> list[str]:
        b = self.base
        return [f"--node-manager-port={self.node_manager}", f"--object-manager-port={b + 2}",
                f"--dashboard-agent-grpc-port={b + 3}", f"--dashboard-agent-listen-port={b + 4}",
                f"--metrics-export-port={b + 5}", f"--runtime-env-agent-port={b + 6}",
                f"--min-worker-port={b + 21}", f"--max-worker-port={b + 120}"]


def ray_start_argv(role: str, env: Mapping[str, str], ray: str = "ray") -> list[str]:
    """`ray start --block ...` for this node, from its environment (pure)."""
    base = int(env.get("FLUX_RAY_PORT_BASE", "") or DEFAULT_PORT_BASE)
    ports = NodePorts(base)
    argv = [ray, "start", "--block", "--disable-usage-stats", *ports.args()]
    node_ip = env.get("FLUX_NODE_IP", "").strip()
    if node_ip:
        argv.append(f"--node-ip-address={node_ip}")
    if role == "head":
        dashboard = int(env.get("FLUX_RAY_DASHBOARD_PORT", "") or ports.dashboard)
        argv += ["--head", f"--port={ports.gcs}", f"--ray-client-server-port={base + 7}",
                 "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}"]
    elif role == "worker":
        head = env.get("FLUX_RAY_HEAD", "").strip()
        if not head:
            raise SettingsError("FLUX_RAY_HEAD must name the head node (host or host:port) "
                                "for a worker")
        argv.append(f"--address={head if ':' in head else f'{head}:{ports.gcs}'}")
    else:
        raise SettingsError(f"node role must be head or worker, not {role!r}")
    # The head serves replicas too (node 1's GPUs count). Ray finds GPUs by itself; in tests a
    # custom resource stands where they would be.
    resource = env.get("FLUX_REPLICA_RESOURCE", "").strip() or "GPU"
    slots = env.get("FLUX_NODE_REPLICAS", "").strip()
    if resource != "GPU":
        argv.append(f"--resources={json.dumps({resource: int(slots or 1)})}")
    elif slots:
        argv.append(f"--num-gpus={int(slots)}")
    return argv


def _ray_binary() -> str:
    found = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
    return found


def _stop(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """Stop `ray start` and every Ray process of this node: its whole process group.

    `ray start --block` exits on SIGTERM without stopping the raylet, GCS, dashboard and
    workers it started; a container's end takes them along, but on a plain host they would
    outlive the node. SIGTERM first (Ray's processes treat it as a graceful stop), SIGKILL
    for what is left after `timeout`: the raylet would otherwise drain for 30 s, and the
    endpoint has stopped already (Docker's own stop allows 10 s)."""
    _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout)
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        _reap_orphans()
        time.sleep(0.2)
    _signal_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    _reap_orphans()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap_orphans() -> None:
    """As a container's PID 1, Ray's orphaned processes are ours to reap (else zombies that
    keep the group alive); elsewhere init reaps them."""
    if os.getpid() != 1:
        return
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def run_node(role: str, argv_tail: Sequence[str] = ()) -> int:
    """Start Ray for this node; on the head, then serve the endpoint until told to stop."""
    if os.environ.get("RAY_AUTH_TOKEN") and not os.environ.get("RAY_AUTH_MODE"):
        os.environ["RAY_AUTH_MODE"] = "token"  # every node and the endpoint present the token
    env = dict(os.environ)
    # its own process group: _stop ends every Ray process of this node with it
    ray = subprocess.Popen(ray_start_argv(role, env, _ray_binary()), start_new_session=True)

    def on_signal(signum, _frame) -> None:
        raise SystemExit(128 + signum)

    # Both roles: on the head, uvicorn handles the signal, shuts down, then raises it again;
    # with the default disposition that would end this process before `_stop` ran and leave
    # Ray's processes running on a plain host.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if role == "worker":
        try:
            return ray.wait()
        finally:
            _stop(ray)
    base = int(env.get("FLUX_RAY_PORT_BASE", "") or DEFAULT_PORT_BASE)
    host = env.get("FLUX_NODE_IP", "").strip() or "127.0.0.1"
    os.environ["FLUX_RAY_ADDRESS"] = f"{host}:{base}"
    stopping = threading.Event()

    def watch() -> None:  # Ray gone: the endpoint cannot serve, stop it (it says why)
        code = ray.wait()
        if not stopping.is_set():
            print(f"flux_server.node: ray start exited with {code}; stopping the endpoint",
                  file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="ray-watch", daemon=True).start()
    try:
        from flux_server.main import main  # lazy: the app; the healthcheck imports node

        main()  # uvicorn handles SIGTERM/SIGINT and returns
        return 0 if ray.poll() is None else 1
    finally:
        stopping.set()
        _stop(ray)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("head", "worker"):
        print("usage: python -m flux_server.node head|worker", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(run_node(sys.argv[1], sys.argv[2:]))
