"""doctor on a 3-node cluster, over the fakes of test_doctor_checks: each worker's container
seen on its own node, the head's /ready replicas, and Ray's firewall rules."""

from __future__ import annotations

from typing import Any

from intelligensi_deploy.cloud.lambda_types import FirewallRule
from intelligensi_deploy.cloud.ray_ports import ray_firewall_rules
from intelligensi_deploy.doctor.report import doctor_exit_code
from intelligensi_deploy.doctor.runner import run_checks
from intelligensi_deploy.state import NodeRecord
from tests.unit.test_doctor_checks import (
    IP,
    READY_BODY,
    FakeDocker,
    FakeHost,
    FakeHttp,
    FakeLambda,
    HttpAnswer,
    check,
    inspect_doc,
    make_deps,
)

IPS = [IP, "203.0.113.8", "203.0.113.9"]
NODES = [NodeRecord(index=i, name=f"fluxdeploy-flux-node{i}", instance_id=f"i-{i}",
                    ip=ip, host_key="ssh-ed25519 AAAA", container_name=f"fluxdeploy-flux-node{i}")
         for i, ip in enumerate(IPS, start=1)]


def ready_body(states: list[str]) -> dict[str, Any]:
    rows = [{"replica": f"r{i}", "node_id": f"n{i}", "node_ip": ip, "state": state,
             "progress": {}, "error": None} for i, (ip, state) in enumerate(zip(IPS, states))]
    ready = states.count("ready")
    return {**READY_BODY, "cluster": {"ready": f"{ready}/3", "ready_replicas": ready,
                                      "expected_replicas": 3, "min_ready": 3,
                                      "replicas": rows}}


def cluster_deps(states: list[str], workers: dict[int, dict | Exception | None],
                 rules: list[FirewallRule] | None = None):
    head_docker = FakeDocker(inspect=inspect_doc())
    by_label = {f"node{i}": FakeDocker(inspect=w, logs="ray: raylet lost\nGCS unreachable")
                for i, w in workers.items() if not isinstance(w, Exception)}

    def connect_node(node: NodeRecord) -> FakeHost:
        found = workers[node.index]
        if isinstance(found, Exception):
            raise found
        return FakeHost(label=f"node{node.index}")

    ok = all(s == "ready" for s in states)
    http = FakeHttp({"127.0.0.1:48000/health": HttpAnswer(200, {"status": "ok"}),
                     "127.0.0.1:48000/ready": HttpAnswer(200 if ok else 503, ready_body(states)),
                     f"{IP}:8000/health": HttpAnswer(200, {"status": "ok"})})
    base = [*ray_firewall_rules("flux", IPS), FirewallRule("tcp", (22, 22), "0.0.0.0/0", "SSH"),
            FirewallRule("tcp", (8000, 8000), "0.0.0.0/0", "fluxdeploy flux")]
    deps = make_deps(docker=head_docker, http=http, cloud=FakeLambda(rules=rules or base),
                     nodes=NODES, container_name="fluxdeploy-flux-node1")
    deps.docker_for = lambda host: by_label.get(host.label, head_docker)
    deps.connect_node = connect_node
    return deps


def test_a_healthy_cluster_passes_naming_its_nodes():
    report = run_checks(cluster_deps(["ready"] * 3, {2: inspect_doc(), 3: inspect_doc()}))
    result = check(report, "cluster")
    assert result.status == "pass", result
    assert result.evidence[0] == "3 nodes; replicas ready 3/3 (min_ready 3)"
    assert any("node 3 (203.0.113.9): container fluxdeploy-flux-node3 running" in e
               for e in result.evidence)
    assert doctor_exit_code(report) == 0


def test_a_worker_whose_container_exited_is_named_with_its_exit_code_once():
    report = run_checks(cluster_deps(["ready", "ready", "lost"],
                                     {2: inspect_doc(), 3: inspect_doc(status="exited",
                                                                       exit_code=137)}))
    result = check(report, "cluster")
    assert result.status == "fail" and "Node 3 (203.0.113.9)" in result.title
    assert "exited (exit code 137)" in result.title
    lost = [f for f in result.findings if f.id == "node-not-joined"]
    assert len(lost) == 1 and "GCS unreachable" in " ".join(lost[0].evidence)
    assert result.doc == "node-not-joined" and doctor_exit_code(report) == 1


def test_an_unreachable_worker_and_a_silent_one_are_both_named():
    report = run_checks(cluster_deps(["ready", "ready", "ready"],
                                     {2: OSError("timed out"), 3: {}}))
    result = check(report, "cluster")
    titles = [f.title for f in result.findings if f.id == "node-not-joined"]
    assert any("203.0.113.8" in t and "not reachable over SSH" in t for t in titles)
    assert any("203.0.113.9" in t and "no container" in t for t in titles)


def test_a_world_open_ray_rule_fails_the_cluster_check():
    rules = [FirewallRule("tcp", (6379, 6499), "0.0.0.0/0", "someone opened ray")]
    report = run_checks(cluster_deps(["ready"] * 3, {2: inspect_doc(), 3: inspect_doc()},
                                     rules=rules))
    result = check(report, "cluster")
    assert result.status == "fail" and [f.id for f in result.findings] == ["ray-ports-open"]
    assert "0.0.0.0/0" in " ".join(result.evidence)


def test_two_lost_workers_are_both_named_in_the_report():
    report = run_checks(cluster_deps(["ready", "lost", "lost"],
                                     {2: inspect_doc(status="exited", exit_code=137),
                                      3: OSError("timed out")}))
    [finding] = [f for f in report.findings if f.id == "node-not-joined"]
    assert "203.0.113.8" in finding.title and "203.0.113.9" in finding.title, finding.title
    assert any("203.0.113.8" in e for e in finding.evidence)
    assert any("203.0.113.9" in e for e in finding.evidence)
