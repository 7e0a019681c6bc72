"""`fluxdeploy status`: the recorded state joined with what the machine says now.

Records that hold nothing (down, or never launched) are reported from the file alone, with
neither pydantic nor a connection: `status` is a quick command until there is something live
to ask.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.state_records import holds_resources, nothing_launched_message

if TYPE_CHECKING:
    from intelligensi_deploy.state import Deployment


def record_status(record: Mapping[str, Any]) -> dict[str, Any]:
    """The report of one record: from the file when it holds nothing, else `live_status`."""
    if record.get("phase") != "down" and holds_resources(record):
        from intelligensi_deploy.state import Deployment

        return live_status(Deployment.model_validate(record))
    report = {k: v for k, v in record.items() if k != "host_key"}
    report.update(container=None, ready=None)
    if record.get("phase") != "down":
        report["error"] = nothing_launched_message(record)
    return report


def live_status(dep: Deployment) -> dict[str, Any]:
    """State file facts plus container state and /ready, gathered read-only."""
    report: dict[str, Any] = dep.model_dump(exclude={"host_key"})
    report["container"] = None
    report["ready"] = None
    report["image_path"] = image_path(dep.image_source)
    if dep.phase == "down":
        return report
    if not dep.holds_resources:
        report["error"] = nothing_launched_message(report)
        return report
    from intelligensi_deploy.deploy import connect, probe_ready
    from intelligensi_deploy.remote.docker import Docker

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


def node_status(dep: Deployment, node: Any, head_container: dict[str, Any] | None
                ) -> dict[str, Any]:
    """One node of a cluster: its record and its container, seen on the node itself (node 1's
    was seen above); a node that cannot be reached says so instead."""
    from intelligensi_deploy.machines import connect_node
    from intelligensi_deploy.remote.docker import Docker

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


def render(reports: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    if not reports:
        console.print("No deployments. Start one with `fluxdeploy up --preset local`.")
        return
    table = Table("name", "preset", "phase", "where", "image", "container", "server")
    for r in reports:
        where = r.get("ip") or ("local" if r["provider"] == "local" else "-")
        if r.get("instance_id"):
            where += f" ({r['instance_id']}, {r.get('region')})"
        container = (r.get("container") or {}).get("status") or "-"
        server = (r.get("ready") or {}).get("detail") or r.get("error") or "-"
        image = (r.get("container") or {}).get("image") or r.get("image") or "-"
        source = {"bundled": "built on host", "registry": "pulled"}.get(r.get("image_source") or "")
        image = f"{image} ({source})" if source else image
        table.add_row(r["name"], r["preset"], r["phase"], where, image, container, server)
    console.print(table)
    for r in reports:
        if r.get("nodes"):
            console.print(cluster_table(r))


def cluster_table(report: dict[str, Any]) -> Any:
    """A cluster's nodes, each with its container and the replicas /ready places there."""
    from rich.table import Table

    ready = (report.get("ready") or {}).get("replicas_ready") or "?"
    table = Table("node", "role", "ip", "instance", "container", "replicas",
                  title=f"{report['name']}: replicas ready {ready}")
    by_ip: dict[str, list[str]] = {}
    for row in report.get("replicas") or []:
        text = f"{row.get('replica')}: {row.get('state')}"
        if row.get("error"):
            text += f" ({(row['error'] or {}).get('type', '')})"
        by_ip.setdefault(str(row.get("node_ip")), []).append(text)
    for node in report["nodes"]:
        container = (node.get("container") or {}).get("status") or node.get("error") or "-"
        table.add_row(str(node["index"]), node["role"], node.get("ip") or "-",
                      node.get("instance_id") or "-", container,
                      "\n".join(by_ip.get(str(node.get("ip")), [])) or "-")
    return table
