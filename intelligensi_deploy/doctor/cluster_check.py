"""doctor's cluster check (a deployment over several nodes): every node's container, the
head's `/ready` replicas, the account's firewall rules and the head's log, through the pure
`diagnose_cluster`. Read-only: `docker inspect` / `logs` on each node and GETs."""

from __future__ import annotations

from typing import Any

from intelligensi_deploy.cloud.lambda_types import FirewallRule
from intelligensi_deploy.cloud.rulesets import find_ruleset
from intelligensi_deploy.diagnosis.cluster_findings import CLUSTER_CATALOGUE, diagnose_cluster
from intelligensi_deploy.diagnosis.findings import Finding
from intelligensi_deploy.doctor.check_types import (
    CheckResult,
    DockerLike,
    DoctorDeps,
    Facts,
    make_result,
)
from intelligensi_deploy.doctor.http_checks import get_on_host

TITLE = "Cluster: every node joined, replicas ready"


def not_a_cluster(deps: DoctorDeps, facts: Facts) -> str | None:
    nodes = getattr(deps.deployment, "nodes", None) or []
    return None if len(nodes) > 1 else "one VM: no cluster"


def worker_container_findings(deps: DoctorDeps) -> tuple[list[str], list[Finding]]:
    """Each worker's container state, seen over SSH on its own node; a node whose container
    is not running, or that cannot be reached, is a node-not-joined finding naming it."""
    evidence: list[str] = []
    findings: list[Finding] = []
    for node in deps.deployment.nodes:
        if node.index == 1:
            continue
        what = f"node {node.index} ({node.ip})"
        try:
            host = deps.connect_node(node) if deps.connect_node else None
            if host is None:
                continue
            try:
                docker = deps.docker_for(host)
                found = docker.inspect(node.container_name)
                state = (found or {}).get("State") or {}
                if state.get("Running"):
                    evidence.append(f"{what}: container {node.container_name} running")
                    continue
                status = (f"container {node.container_name} {state.get('Status')} (exit code "
                          f"{state.get('ExitCode')})" if found
                          else f"no container {node.container_name}")
                lines = _log_tail(docker, node.container_name) if found else []
            finally:
                host.close()
        except Exception as exc:  # noqa: BLE001 - an unreachable node is the finding
            status, lines = f"not reachable over SSH: {str(exc).splitlines()[0][:200]}", []
        evidence.append(f"{what}: {status}")
        findings.append(CLUSTER_CATALOGUE["node-not-joined"].finding(
            [f"{what}: {status}", *lines],
            title=f"Node {node.index} ({node.ip}) is not in the cluster: {status}"))
    return evidence, findings


def _log_tail(docker: DockerLike, container: str, lines: int = 3) -> list[str]:
    try:
        text = docker.logs(container, tail=20)
    except Exception:  # noqa: BLE001 - the state alone is evidence enough
        return []
    return [line.strip() for line in text.splitlines() if line.strip()][-lines:]


def check_cluster(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """All nodes joined and enough replicas ready; else which node, replica or rule."""
    ready: dict[str, Any] | None = None
    try:
        answer = get_on_host(deps, facts, "/ready")
        ready = answer.body if isinstance(answer.body, dict) else None
    except Exception:  # noqa: BLE001 - no answer from the head is itself a finding
        ready = None
    rules: list[FirewallRule] = []
    ruleset_id = deps.deployment.firewall_ruleset_id
    if facts.client is not None:
        try:  # the deployment's own ruleset; an older record's legacy account rules
            ruleset = find_ruleset(facts.client, ruleset_id) if ruleset_id else None
            rules = (list(ruleset.rules) if ruleset is not None
                     else [] if ruleset_id else facts.client.firewall_rules())
        except Exception:  # noqa: BLE001 - the other facts still stand
            rules = []
    head_log = ""
    if facts.docker is not None:
        try:
            head_log = facts.docker.logs(deps.deployment.container_name, tail=deps.log_tail)
        except Exception:  # noqa: BLE001
            head_log = ""
    node_ips = [n.ip for n in deps.deployment.nodes if n.ip]
    findings = diagnose_cluster(ready, node_ips, rules, head_log)
    evidence, container_findings = worker_container_findings(deps)
    # a node whose container is down: that finding (with its exit code) replaces /ready's
    seen_down = [ip for ip in node_ips if any(ip in f.title for f in container_findings)]
    findings = [f for f in findings if not (f.id == "node-not-joined"
                                            and any(ip in f.title for ip in seen_down))]
    findings += container_findings
    cluster = (ready or {}).get("cluster") or {}
    summary = (f"{len(node_ips)} nodes; replicas ready {cluster.get('ready', '?')}"
               + (f" (min_ready {cluster.get('min_ready')})" if cluster else ""))
    errors = [f for f in findings if f.severity == "error"]
    if not errors:
        return make_result("cluster", TITLE, "pass", [summary, *evidence])
    first = errors[0]
    return make_result("cluster", first.title, "fail",
                       [summary, *evidence, *[e for f in errors for e in f.evidence]],
                       fix=first.fix, doc=first.doc, findings=findings)
