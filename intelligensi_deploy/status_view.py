"""`fluxdeploy status` on a terminal: the deployments as a table, and each cluster's nodes."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from intelligensi_deploy.cost import describe_spend


def render(reports: list[dict[str, Any]]) -> None:
    console = Console(highlight=False)
    if not reports:
        console.print("No deployments. Start one with `fluxdeploy up --preset local`.")
        return
    table = Table("name", "preset", "phase", "where", "image", "container", "server", "cost")
    for r in reports:
        where = r.get("ip") or ("local" if r["provider"] == "local" else "-")
        if r.get("instance_id"):
            where += f" ({r['instance_id']}, {r.get('region')})"
        container = (r.get("container") or {}).get("status") or "-"
        server = (r.get("ready") or {}).get("detail") or r.get("error") or "-"
        if (r.get("limits") or {}).get("text"):
            server += f"; {r['limits']['text']}"
        phase = r["phase"] + (f" ({r['down_reason']})" if r.get("down_reason") else "")
        image = (r.get("container") or {}).get("image") or r.get("image") or "-"
        source = {"bundled": "built on host", "registry": "pulled"}.get(r.get("image_source") or "")
        image = f"{image} ({source})" if source else image
        table.add_row(r["name"], r["preset"], phase, where, image, container, server,
                      describe_spend(r.get("cost")))
    console.print(table)
    for r in reports:
        if r.get("time_to_ready") and r["phase"] != "down":
            console.print(f"{r['name']}: {r['time_to_ready']} (the last `up` that started it)")
        if r.get("watchdog_line"):
            console.print(f"{r['name']}: {r['watchdog_line']}")
        if r.get("nodes"):
            console.print(cluster_table(r))


def cluster_table(report: dict[str, Any]) -> Any:
    """A cluster's nodes, each with its container and the replicas /ready places there."""
    ready = (report.get("ready") or {}).get("replicas_ready") or "?"
    table = Table("node", "role", "ip", "instance", "container", "replicas", "cost",
                  title=f"{report['name']}: replicas ready {ready}; "
                        f"{describe_spend(report.get('cost'))}")
    costs = {row["index"]: row for row in (report.get("cost") or {}).get("nodes") or []}
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
                      "\n".join(by_ip.get(str(node.get("ip")), [])) or "-",
                      describe_spend(costs.get(node["index"])))
    return table
