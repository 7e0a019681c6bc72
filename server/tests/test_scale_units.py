"""Scale-out settings and the cluster's /ready view: pure, no Ray."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from flux_server.cluster_status import (
    LOST_AFTER_S,
    ReplicaReport,
    cluster_view,
    lost_nodes,
)
from flux_server.config import SettingsError
from flux_server.scale_config import scale_from_env

SERVER_ROOT = Path(__file__).resolve().parents[1]


def test_one_replica_is_the_plain_process():
    scale = scale_from_env({})
    assert not scale.enabled and scale.min_replicas == scale.max_replicas == 1


def test_fixed_replicas_give_num_replicas_with_one_gpu_each():
    options = scale_from_env({"FLUX_REPLICAS": "8"}).deployment_options()
    assert options["num_replicas"] == 8 and "autoscaling_config" not in options
    assert options["ray_actor_options"]["num_gpus"] == 1
    assert options["max_ongoing_requests"] == 1


def test_autoscaling_and_backpressure_options():
    scale = scale_from_env({"FLUX_MIN_REPLICAS": "1", "FLUX_MAX_REPLICAS": "3",
                            "FLUX_TARGET_ONGOING_REQUESTS": "2",
                            "FLUX_MAX_QUEUED_REQUESTS": "5",
                            "FLUX_REPLICA_RESOURCE": "fakegpu"})
    options = scale.deployment_options()
    assert options["autoscaling_config"]["min_replicas"] == 1
    assert options["autoscaling_config"]["max_replicas"] == 3
    assert options["autoscaling_config"]["target_ongoing_requests"] == 2.0
    assert options["max_queued_requests"] == 5
    assert options["ray_actor_options"]["resources"] == {"fakegpu": 1}
    assert "num_gpus" not in options["ray_actor_options"]
    assert scale.min_ready == 1


def test_queue_size_is_the_default_backpressure_bound():
    assert scale_from_env({"FLUX_REPLICAS": "2"}, queue_size=7).max_queued_requests == 7


@pytest.mark.parametrize("env, words", [
    ({"FLUX_REPLICAS": "two"}, "FLUX_REPLICAS='two' must be a whole number"),
    ({"FLUX_MIN_REPLICAS": "4", "FLUX_MAX_REPLICAS": "2"}, "above FLUX_MAX_REPLICAS=2"),
    ({"FLUX_REPLICAS": "2", "FLUX_MIN_READY": "3"}, "can never be reached"),
    ({"FLUX_REPLICAS": "2", "FLUX_MIN_REPLICAS": "1", "FLUX_MAX_REPLICAS": "3"}, "not all three"),
    ({"FLUX_REPLICAS": "2", "FLUX_REPLICA_RESOURCE": "a b"}, "not a Ray resource name"),
])
def test_bad_scale_settings_name_the_variable_and_the_fix(env, words):
    with pytest.raises(SettingsError, match=words):
        scale_from_env(env)


def _report(replica, ip, state, at, final=False, error=None):
    return ReplicaReport(replica, f"node-{ip}", ip,
                         {"state": state, "progress": {}, "elapsed_s": 1.0, "error": error},
                         at, final)


def test_view_counts_ready_replicas_against_min_ready():
    now = 1000.0
    reports = [_report("a", "10.0.0.1", "ready", now), _report("b", "10.0.0.2", "ready", now),
               _report("c", "10.0.0.3", "loading", now), _report("d", "10.0.0.3", "ready", now)]
    view = cluster_view(reports, now, min_ready=4, min_replicas=4)
    assert view.as_dict()["ready"] == "3/4" and not view.ready
    assert view.state == "loading"
    assert [r["state"] for r in view.replicas] == ["ready", "ready", "loading", "ready"]
    assert cluster_view(reports, now, min_ready=3, min_replicas=4).ready


def test_a_silent_replica_is_lost_and_its_node_named():
    now = 1000.0
    reports = [_report("a", "10.0.0.1", "ready", now),
               _report("b", "10.0.0.2", "ready", now),
               _report("c", "10.0.0.3", "ready", now - LOST_AFTER_S - 1)]
    view = cluster_view(reports, now, min_ready=3, min_replicas=3)
    assert view.as_dict()["ready"] == "2/3" and not view.ready
    assert lost_nodes(view) == ["10.0.0.3"]


def test_failed_replica_shows_why_and_scaled_down_ones_disappear():
    now = 1000.0
    error = {"type": "OutOfMemoryError", "message": "CUDA out of memory", "hint": "x"}
    reports = [_report("a", "10.0.0.1", "ready", now),
               _report("b", "10.0.0.1", "failed", now - 30, final=True, error=error),
               _report("c", "10.0.0.2", "ready", now - 2, final=True)]
    view = cluster_view(reports, now, min_ready=1, min_replicas=1)
    assert [(r["replica"], r["state"]) for r in view.replicas] == [("a", "ready"),
                                                                    ("b", "failed")]
    assert view.replicas[1]["error"]["type"] == "OutOfMemoryError"
    assert view.as_dict()["ready"] == "1/1"


def test_the_single_replica_server_imports_no_ray():
    code = ("import sys, flux_server.main, flux_server.app, flux_server.service; "
            "from flux_server.app import create_app; from flux_server.config import Settings; "
            "create_app(Settings(model='tiny')); "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=SERVER_ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"
