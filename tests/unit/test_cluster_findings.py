"""Cluster diagnosis: lost or missing nodes, replica OOM, head lost, world-open Ray ports."""

from __future__ import annotations

import pytest

from intelligensi_deploy.cloud.lambda_types import FirewallRule
from intelligensi_deploy.diagnosis.cluster_findings import CLUSTER_FINDING_IDS, diagnose_cluster
from tests.unit.test_doctor_playbook import PLAYBOOK, playbook_anchors


def replica(rid: str, ip: str, state: str, error: dict | None = None) -> dict:
    return {"replica": rid, "node_id": f"n-{ip}", "node_ip": ip, "state": state,
            "progress": {}, "error": error}


def ready(*replicas: dict, count: str = "2/3") -> dict:
    return {"state": "ready", "ready": True, "cluster": {"ready": count,
                                                         "replicas": list(replicas)}}


@pytest.mark.parametrize("finding_id", CLUSTER_FINDING_IDS)
def test_every_cluster_finding_has_a_playbook_section(finding_id):
    assert finding_id in playbook_anchors()
    assert f"\n## {finding_id}\n" in PLAYBOOK.read_text(encoding="utf-8")


def test_a_lost_node_is_named():
    body = ready(replica("a", "10.0.0.1", "ready"), replica("b", "10.0.0.2", "ready"),
                 replica("c", "10.0.0.3", "lost"))
    [finding] = diagnose_cluster(body, ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
    assert finding.id == "node-not-joined" and "10.0.0.3" in finding.title


def test_a_node_that_never_reported_has_not_joined():
    body = ready(replica("a", "10.0.0.1", "ready"), count="1/2")
    [finding] = diagnose_cluster(body, ["10.0.0.1", "10.0.0.2"])
    assert finding.title == "Node 10.0.0.2 has not joined the Ray cluster"


def test_replica_oom_is_told_apart_from_other_failures():
    oom = {"type": "OutOfMemoryError", "message": "CUDA out of memory. Tried to allocate"}
    gated = {"type": "GatedRepoError", "message": "401 for FLUX.1-dev"}
    body = ready(replica("a", "10.0.0.1", "failed", oom), replica("b", "10.0.0.1", "failed",
                                                                  gated))
    assert [f.id for f in diagnose_cluster(body)] == ["replica-oom", "replica-failed"]


def test_head_lost_when_the_endpoint_is_silent_or_the_log_says_so():
    assert [f.id for f in diagnose_cluster(None)] == ["head-lost"]
    log = "x\nFailed to connect to GCS at address 10.0.0.1:6379 within 5 seconds.\n"
    [finding] = diagnose_cluster(ready(replica("a", "10.0.0.1", "ready"), count="1/1"),
                                 head_log=log)
    assert finding.id == "head-lost" and "6379" in finding.evidence[0]


def test_a_healthy_cluster_has_no_finding():
    body = ready(replica("a", "10.0.0.1", "ready"), replica("b", "10.0.0.2", "ready"),
                 count="2/2")
    rules = [FirewallRule("tcp", (6379, 6499), "10.0.0.1/32", "fluxdeploy ray demo")]
    assert diagnose_cluster(body, ["10.0.0.1", "10.0.0.2"], rules) == []


def test_world_open_ray_ports_are_an_error():
    rules = [FirewallRule("tcp", (6379, 6379), "0.0.0.0/0", "oops")]
    [finding] = diagnose_cluster(ready(replica("a", "1.2.3.4", "ready"), count="1/1"),
                                 rules=rules)
    assert finding.id == "ray-ports-open" and "0.0.0.0/0" in finding.evidence[0]
