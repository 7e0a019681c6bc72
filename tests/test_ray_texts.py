"""Ray's failures made for real (Ray 2.60 from the test venv, bounded runs on 127.0.0.1, see
tests/fixtures/ray_runs.py), then diagnosed as `fluxdeploy diagnose` reads a node's log.

Marked e2e: each run starts real Ray processes (a head takes seconds; the head-lost case
waits out the raylet's GCS timeout, set to 5 s). The captures of the same runs are kept in
tests/fixtures/ray_texts/ and tested in tests/unit/test_diagnose_ray.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from intelligensi_deploy.diagnosis.diagnose import diagnose
from tests.fixtures import ray_runs

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not ray_runs.ray_available(), reason="Ray is not installed")]


def finding_ids(text: str) -> list[str]:
    return [f.id for f in diagnose(text)]


def test_a_worker_with_a_wrong_token(tmp_path: Path) -> None:
    text = ray_runs.wrong_token(tmp_path)
    findings = diagnose(text)
    assert [f.id for f in findings] == ["node-not-joined"], text[-2000:]
    assert "token" in findings[0].title


def test_a_worker_against_a_closed_port(tmp_path: Path) -> None:
    text = ray_runs.gcs_unreachable(tmp_path)
    findings = diagnose(text)
    assert [f.id for f in findings] == ["node-not-joined"], text[-2000:]
    assert "never joined" in findings[0].title


def test_a_worker_whose_head_was_killed(tmp_path: Path) -> None:
    text = ray_runs.head_lost(tmp_path)
    assert finding_ids(text) == ["head-lost"], text[-3000:]


def test_serve_run_of_an_app_whose_constructor_raises(tmp_path: Path) -> None:
    text = ray_runs.serve_constructor_raises(tmp_path)
    findings = diagnose(text)
    assert [f.id for f in findings] == ["replica-failed"], text[-3000:]
    assert any("ValueError: the model path /models/flux does not exist" in line
               for line in findings[0].evidence)


def test_the_memory_monitor_killing_an_actor(tmp_path: Path) -> None:
    text = ray_runs.memory_monitor(tmp_path)
    assert finding_ids(text) == ["replica-oom"], text[-3000:]
