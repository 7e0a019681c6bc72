"""What doctor finds on a scale-out (Ray Serve) cluster. Pure: facts in, findings out.

The facts are the endpoint's /ready body (its `cluster` part lists each replica with its
node, phase and error), the node addresses recorded in state, the deployment's firewall rules
and the head's log text. Each id has a PLAYBOOK.md section of the same name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from intelligensi_deploy.cloud.ray_ports import world_open_ray_rules
from intelligensi_deploy.diagnosis.findings import Finding, FindingKind

if TYPE_CHECKING:
    from intelligensi_deploy.cloud.lambda_types import FirewallRule

CLUSTER_CATALOGUE: dict[str, FindingKind] = {k.id: k for k in (
    FindingKind(
        "node-not-joined", "error", "A cluster node has not joined Ray, or was lost",
        "On that node: `docker logs` of its container and `ray status` on the head; check "
        "the Ray firewall rule for the node's address, then `fluxdeploy up` again (it resumes).",
    ),
    FindingKind(
        "replica-oom", "error", "A replica ran out of memory (GPU or host RAM)",
        "Each replica holds a whole pipeline on one GPU: use a preset that fits one GPU "
        "(quant nf4/int8, memory model-offload) or fewer replicas per node.",
    ),
    FindingKind(
        "replica-failed", "error", "A replica failed to load the pipeline",
        "Read the reason shown; `fluxdeploy logs --replica ID` shows its log.",
    ),
    FindingKind(
        "head-lost", "error", "The Ray head (node 1, the endpoint) is gone or unreachable",
        "The endpoint lives on the head: restart its container (`fluxdeploy up` resumes); the "
        "workers rejoin by themselves. If the VM is gone, `fluxdeploy down` and `up` again.",
    ),
    FindingKind(
        "ray-ports-open", "error", "A firewall rule opens Ray's ports wider than one host",
        "Ray's ports have no authentication: delete that rule in the Lambda dashboard "
        "(Firewall); fluxdeploy puts one /32 rule per node only in the deployment's ruleset.",
    ),
)}
CLUSTER_FINDING_IDS: tuple[str, ...] = tuple(CLUSTER_CATALOGUE)

_OOM = re.compile(r"out of memory|OutOfMemoryError|running low on memory|OOMKilled", re.IGNORECASE)
_HEAD_LOST = re.compile(r"Failed to connect to GCS|GCS has been down|"
                        r"Unable to connect to GCS|ConnectionError: .*GCS", re.IGNORECASE)


def _finding(finding_id: str, evidence: Sequence[str], title: str | None = None) -> Finding:
    return CLUSTER_CATALOGUE[finding_id].finding(list(evidence), title=title)


def diagnose_cluster(ready: Mapping[str, Any] | None, node_ips: Sequence[str] = (),
                     rules: Sequence[FirewallRule] = (), head_log: str = "") -> list[Finding]:
    """Findings for the cluster; `ready` is None when the endpoint did not answer at all."""
    findings: list[Finding] = []
    head_lines = [line.strip() for line in head_log.splitlines() if _HEAD_LOST.search(line)]
    if ready is None or head_lines:
        evidence = head_lines[-3:] or ["the endpoint on node 1 does not answer /ready"]
        findings.append(_finding("head-lost", evidence))
    cluster = (ready or {}).get("cluster") or {}
    replicas = cluster.get("replicas", [])
    if cluster:
        lost = sorted({r["node_ip"] for r in replicas if r["state"] == "lost"})
        live_nodes = {r["node_ip"] for r in replicas if r["state"] != "lost"}
        silent = [ip for ip in node_ips if ip not in live_nodes and ip not in lost]
        for ip in lost:
            findings.append(_finding("node-not-joined", [
                f"node {ip}: its replica stopped reporting ({cluster.get('ready')} ready)"],
                title=f"Node {ip} was lost: its replicas stopped reporting"))
        for ip in silent:
            findings.append(_finding("node-not-joined", [
                f"node {ip}: no replica has reported from it ({cluster.get('ready')} ready)"],
                title=f"Node {ip} has not joined the Ray cluster"))
    for replica in replicas:
        if replica["state"] != "failed":
            continue
        error = replica.get("error") or {}
        line = (f"replica {replica['replica']} on {replica['node_ip']}: "
                f"{error.get('type', '?')}: {error.get('message', '')}"[:300])
        kind = "replica-oom" if _OOM.search(f"{error.get('type')} {error.get('message')}") \
            else "replica-failed"
        findings.append(_finding(kind, [line]))
    wide = world_open_ray_rules(rules)
    if wide:
        findings.append(_finding("ray-ports-open", [
            f"{r.protocol} {r.port_range} from {r.source_network} ({r.description})"
            for r in wide]))
    return findings
