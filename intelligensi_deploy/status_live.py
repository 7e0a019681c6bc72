"""`fluxdeploy status` for a record that holds something: the recorded facts joined with what
the machine says now (the container, `/ready`, each node of a cluster), read-only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.health import probe_ready
from intelligensi_deploy.machines import connect, connect_node
from intelligensi_deploy.remote.docker import Docker
from intelligensi_deploy.state import Deployment, NodeRecord
from intelligensi_deploy.state_records import nothing_launched_message


def live_status(record: Mapping[str, Any]) -> dict[str, Any]:
    """State file facts plus container state and /ready, gathered read-only."""
    dep = Deployment.model_validate(record)
    report: dict[str, Any] = dep.model_dump(exclude={"host_key"})
    report["container"] = None
    report["ready"] = None
    report["image_path"] = image_path(dep.image_source)
    if dep.phase == "down":
        return report
    if not dep.holds_resources:
        report["error"] = nothing_launched_message(report)
        return report
    try:
        host = connect(dep)
    except FluxdeployError as exc:
        report["error"] = exc.message
        return report
    try:
        found = Docker(host).inspect(dep.container_name)
        if found:
            report["container"] = container_facts(found)
            if (found.get("State") or {}).get("Running"):
                ready = probe_ready(host, dep.port)
                report["ready"] = {"state": ready.state, "detail": ready.describe(),
                                   "error": ready.error}
                if ready.cluster is not None:
                    report["ready"]["replicas_ready"] = ready.cluster.get("ready")
                    report["replicas"] = ready.cluster.get("replicas", [])
    except FluxdeployError as exc:
        report["error"] = exc.message
    finally:
        host.close()
    if dep.is_cluster:
        report["nodes"] = [node_status(dep, node, report["container"] if node.index == 1
                                       else None) for node in dep.nodes]
    return report


def container_facts(found: Mapping[str, Any]) -> dict[str, Any]:
    """What status shows of a `docker inspect` object."""
    state = found.get("State") or {}
    return {"status": state.get("Status"), "exit_code": state.get("ExitCode"),
            "oom_killed": state.get("OOMKilled"), "restart_count": found.get("RestartCount"),
            "image": (found.get("Config") or {}).get("Image")}  # the tag running


def node_status(dep: Deployment, node: NodeRecord, head_container: dict[str, Any] | None
                ) -> dict[str, Any]:
    """One node of a cluster: its record and its container, seen on the node itself (node 1's
    was seen above); a node that cannot be reached says so instead."""
    row: dict[str, Any] = {"index": node.index, "role": node.role, "ip": node.ip,
                           "instance_id": node.instance_id, "container_name": node.container_name,
                           "container": head_container, "error": None}
    if node.index == 1:
        return row
    try:
        host = connect_node(dep, node)
        try:
            found = Docker(host).inspect(node.container_name)
            row["container"] = container_facts(found) if found else {"status": "missing"}
        finally:
            host.close()
    except FluxdeployError as exc:
        row["error"] = exc.message
    return row


def image_path(source: str | None) -> str:
    """How the deployment's image got to the host."""
    return {"bundled": "built on the host (bundled)", "registry": "pulled from the registry"
            }.get(source or "", "unknown")
