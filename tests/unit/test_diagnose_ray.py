"""diagnose() on Ray 2.60's own words, as captured from real runs (tests/fixtures/ray_runs.py
made them; tests/test_ray_texts.py makes them again and diagnoses them fresh).

Each text is a node's log as `fluxdeploy logs --node N | fluxdeploy diagnose -` reads it:
it must come out as the cluster finding that tells the operator what to do, never as a
generic container-crash, and never as nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from intelligensi_deploy.diagnosis.diagnose import diagnose, has_errors
from intelligensi_deploy.diagnosis.findings import Finding
from intelligensi_deploy.diagnosis.ray_log import ray_findings, strip_ray_prefix

TEXTS = Path(__file__).resolve().parents[1] / "fixtures" / "ray_texts"


def text(name: str) -> str:
    return (TEXTS / f"{name}.log").read_text()


def the_one(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, [(f.id, f.evidence) for f in findings]
    return findings[0]


def evidence(finding: Finding) -> str:
    return "\n".join(finding.evidence)


def test_a_refused_token_is_a_node_not_joined_that_explains_the_token() -> None:
    finding = the_one(diagnose(text("wrong_token")))
    assert finding.id == "node-not-joined" and finding.severity == "error"
    assert "token" in finding.title and "RAY_AUTH_TOKEN" in finding.fix
    assert "InvalidAuthToken" in evidence(finding)
    assert "container-crash" not in finding.id


def test_a_head_that_does_not_answer_is_a_node_that_never_joined() -> None:
    finding = the_one(diagnose(text("gcs_unreachable")))
    assert finding.id == "node-not-joined"
    assert "never joined" in finding.title
    assert "Failed to connect to GCS at address " in evidence(finding)
    assert "firewall" in finding.fix and "token" not in finding.title


def test_the_gcs_lost_after_joining_is_head_lost() -> None:
    finding = the_one(diagnose(text("head_lost")))
    assert finding.id == "head-lost"
    assert "GCS may have been killed" in evidence(finding)
    assert "raylet exited" in evidence(finding)


def test_a_serve_constructor_exception_is_replica_failed_with_its_line() -> None:
    finding = the_one(diagnose(text("serve_constructor")))
    assert finding.id == "replica-failed"
    assert "ValueError: the model path /models/flux does not exist" in evidence(finding)
    assert "Deploying application default failed" in evidence(finding)


def test_the_memory_monitor_kill_is_replica_oom_not_a_cuda_oom() -> None:
    finding = the_one(diagnose(text("memory_monitor")))
    assert finding.id == "replica-oom"
    assert "running low on memory" in evidence(finding)
    assert "RAY_memory_usage_threshold" in finding.fix


@pytest.mark.parametrize("name", ["wrong_token", "gcs_unreachable", "head_lost",
                                  "serve_constructor", "memory_monitor"])
def test_every_ray_text_is_an_error_of_the_cluster_catalogue(name: str) -> None:
    findings = diagnose(text(name))
    assert has_errors(findings)
    assert {f.doc for f in findings} <= {"node-not-joined", "head-lost", "replica-failed",
                                         "replica-oom"}


def test_a_gcs_line_before_joining_and_after_joining_read_differently() -> None:
    line = ("[2026-12-03 12:34:52,893 W 14213 14213] rpc_client.h:153: Failed to connect to "
            "GCS at address 10.0.0.1:6379 within 5 seconds.")
    before, _ = ray_findings([line])
    joined = "2026-12-03 12:37:01,874\tSUCC scripts.py:1251 -- Ray runtime started."
    after, _ = ray_findings([joined, line])
    assert [f.id for _, f in before] == ["node-not-joined"]
    assert [f.id for _, f in after] == ["head-lost"]
    assert before[0][1].evidence == (
        "Failed to connect to GCS at address 10.0.0.1:6379 within 5 seconds.",)


def test_our_own_replica_load_failure_under_serve_is_replica_failed_and_named() -> None:
    """FluxReplica raises "pipeline load failed: ..." (server/flux_server/replica.py); Serve
    logs it as it logged the constructor above: the cause also gets its own finding."""
    replica = text("serve_constructor").replace(
        "ValueError: the model path /models/flux does not exist",
        "RuntimeError: pipeline load failed: GatedRepoError: 401 Client Error. Cannot access "
        "gated repo for url https://huggingface.co/black-forest-labs/FLUX.1-dev (set HF_TOKEN)")
    findings = diagnose(replica)
    assert [f.id for f in findings] == ["replica-failed", "hf-auth"]
    assert "pipeline load failed: GatedRepoError" in evidence(findings[0])


def test_a_replica_failing_with_cuda_oom_is_replica_oom() -> None:
    oom = text("serve_constructor").replace(
        "ValueError: the model path /models/flux does not exist",
        "RuntimeError: pipeline load failed: OutOfMemoryError: CUDA out of memory. Tried to "
        "allocate 90.00 MiB")
    assert "replica-oom" in [f.id for f in diagnose(oom)]


def test_ray_source_prefixes_are_removed() -> None:
    assert strip_ray_prefix("(ServeController pid=17382) ValueError: x") == "ValueError: x"
    assert strip_ray_prefix("(ServeReplica:default:Broken pid=9, ip=10.0.0.2) E: y") == "E: y"
    assert strip_ray_prefix("(raylet) Task failed") == "Task failed"
    assert strip_ray_prefix("(not ray) text") == "(not ray) text"
