"""Which node a replica is on, the replica's log file, and clear refusals on one VM."""

from __future__ import annotations

import subprocess

import pytest

from intelligensi_deploy.cluster_access import (
    node_of_replica,
    replica_log_args,
    require_cluster,
)
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.state import Deployment, NodeRecord

NODES = [NodeRecord(index=i, name=f"fluxdeploy-c-node{i}", ip=f"10.0.0.{i}",
                    container_name=f"fluxdeploy-c-node{i}") for i in (1, 2, 3)]
CLUSTER = Deployment(name="c", preset="p", provider="lambda", nodes=NODES)
ROWS = [{"replica": "abc123", "node_ip": "10.0.0.2", "state": "ready"},
        {"replica": "def456", "node_ip": "10.0.0.3", "state": "loading"}]


def test_a_replica_is_found_on_its_node_and_an_unknown_one_names_the_others():
    assert node_of_replica(CLUSTER, ROWS, "def456").index == 3
    with pytest.raises(FluxdeployError) as info:
        node_of_replica(CLUSTER, ROWS, "zzz")
    assert "abc123 (ready on 10.0.0.2)" in info.value.message
    assert "def456 (loading on 10.0.0.3)" in info.value.message


def test_one_vm_deployments_refuse_cluster_options_saying_why():
    single = Deployment(name="s", preset="p", provider="lambda")
    with pytest.raises(FluxdeployError, match="runs on one VM: --dashboard is for a cluster"):
        require_cluster(single, "--dashboard")
    require_cluster(CLUSTER, "--dashboard")


def test_the_replica_log_command_finds_the_file_and_rejects_shell_words(tmp_path):
    with pytest.raises(FluxdeployError, match="not a replica id"):
        replica_log_args("c1", "x; rm -rf /", 10)
    args = replica_log_args("c1", "abc123", 2)
    assert args[:2] == ["exec", "c1"]
    # run the script itself against a folder laid out as Ray Serve lays it out
    serve = tmp_path / "serve"
    serve.mkdir()
    (serve / "replica_flux_FluxReplica_abc123.log").write_text("one\ntwo\nthree\n")
    script = args[-1].replace("/tmp/ray/session_latest/logs/serve", str(serve))
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout == "two\nthree\n"
    missing = subprocess.run(["sh", "-c", script.replace("abc123", "nope00")],
                             capture_output=True, text=True, check=False)
    assert missing.returncode == 3 and "no Serve log file" in missing.stderr
