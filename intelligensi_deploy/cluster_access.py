"""Reaching one node or one replica of a cluster, for `logs --node N` and
`logs --replica ID`: the choices (which node, which file) are pure functions; the two
functions at the end connect and read."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from intelligensi_deploy import names
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.health import probe_ready
from intelligensi_deploy.machines import connect_existing, connect_node, require_running
from intelligensi_deploy.remote.docker import Docker
from intelligensi_deploy.remote.host_protocol import Host
from intelligensi_deploy.state import Deployment, NodeRecord

SERVE_LOG_DIR = "/tmp/ray/session_latest/logs/serve"
_REPLICA_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def require_cluster(dep: Deployment, option: str) -> None:
    if not dep.is_cluster:
        raise FluxdeployError(
            f"Deployment {dep.name!r} runs on one VM: {option} is for a cluster of several "
            "nodes (a preset with scale.nodes > 1).",
            fix=f"Leave out {option}: `fluxdeploy logs` shows the one server's log.")


def node_of_replica(dep: Deployment, replicas: Sequence[Mapping[str, Any]], replica_id: str
                    ) -> NodeRecord:
    """The node a replica runs on, from the head's /ready rows; an unknown id names the
    ones there are."""
    row = next((r for r in replicas if r.get("replica") == replica_id), None)
    if row is None:
        known = ", ".join(f"{r.get('replica')} ({r.get('state')} on {r.get('node_ip')})"
                          for r in replicas) or "none reported yet"
        raise FluxdeployError(f"No replica {replica_id!r} in deployment {dep.name!r} "
                              f"(replicas: {known}).",
                              fix="Pick one of those ids (`fluxdeploy status` lists them).")
    for node in dep.nodes:
        if node.ip == row.get("node_ip"):
            return node
    raise FluxdeployError(f"Replica {replica_id!r} runs on {row.get('node_ip')}, which is "
                          f"not a recorded node of {dep.name!r}.",
                          fix="Run `fluxdeploy status`; `fluxdeploy up` resumes the cluster.")


def dashboard_token_hint(dep: Deployment) -> str:
    """Where the dashboard's login token is (the token itself is never printed)."""
    key = f" -i {dep.ssh_key_path}" if dep.ssh_key_path else ""
    return ("The dashboard asks for the cluster's Ray token (RAY_AUTH_TOKEN): it is in "
            f"~/{names.env_file_name(dep.name, 1)} on the head, e.g. "
            f"`ssh{key} -p {dep.ssh_port or 22} {dep.ssh_user or 'ubuntu'}@{dep.ip} "
            f"grep RAY_AUTH_TOKEN {names.env_file_name(dep.name, 1)}`")


def replica_log_args(container: str, replica_id: str, tail: int | None) -> list[str]:
    """`docker exec` args (after `docker`) printing the replica's Ray Serve log file."""
    if not _REPLICA_ID.fullmatch(replica_id):
        raise FluxdeployError(f"{replica_id!r} is not a replica id (letters, digits, - and _).",
                              fix="Copy the id from `fluxdeploy status`.")
    pattern = f"{SERVE_LOG_DIR}/replica_*_{replica_id}*.log"
    show = f"tail -n {int(tail)}" if tail else "cat"
    script = (f"set -- {pattern}; [ -e \"$1\" ] || {{ echo \"no Serve log file {pattern}\" "
              f">&2; exit 3; }}; {show} \"$@\"")
    return ["exec", container, "sh", "-c", script]


def connect_to_node(dep: Deployment, index: int) -> tuple[Host, str]:
    """An SSH connection to node `index` and the name of its container."""
    require_cluster(dep, "--node")
    require_running(dep)
    node = dep.node(index)
    return connect_node(dep, node), node.container_name


def show_replica_log(dep: Deployment, replica_id: str, tail: int | None,
                     on_output: Callable[[str], None]) -> None:
    """Find the replica's node through the head's /ready, then print its Serve log there."""
    require_cluster(dep, "--replica")
    head = connect_existing(dep)
    try:
        ready = probe_ready(head, dep.port, dep.tls)
    finally:
        head.close()
    if ready.cluster is None:
        raise FluxdeployError(f"The head of {dep.name!r} did not list its replicas "
                              f"({ready.describe()}).",
                              fix="`fluxdeploy doctor` says why; `fluxdeploy logs` shows the "
                                  "head's log.")
    node = node_of_replica(dep, ready.cluster.get("replicas") or [], replica_id)
    host = connect_node(dep, node)
    try:
        result = Docker(host).run_docker(replica_log_args(node.container_name, replica_id, tail),
                                         timeout=60, on_output=on_output)
    finally:
        host.close()
    if not result.ok:
        raise FluxdeployError(f"Could not read replica {replica_id}'s log on node {node.index} "
                              f"({node.ip}): {result.output.strip()[-300:]}",
                              fix=f"`fluxdeploy logs --node {node.index}` shows the node's "
                                  "container log.")
