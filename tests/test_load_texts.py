"""Model-load failures made for real (tests/fixtures/load_runs.py: the installed diffusers,
huggingface_hub and requests on the tiny FLUX pipeline, in fresh processes), then diagnosed
as `fluxdeploy diagnose` reads a container's log. The captures of the same runs are kept in
tests/fixtures/load_texts/ and tested in tests/unit/test_diagnose_load_texts.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from intelligensi_deploy.diagnosis.diagnose import diagnose
from tests.fixtures import load_runs

diffusers = pytest.importorskip("diffusers")
pytestmark = pytest.mark.e2e
SERVER = Path(__file__).resolve().parents[1] / "server"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(SERVER))
    from flux_server.tiny import save_tiny_pipeline  # lazy: the server package, tests only

    return save_tiny_pipeline(tmp_path_factory.mktemp("load") / "tiny")


def finding_ids(text: str) -> list[str]:
    return [f.id for f in diagnose(text)]


def test_device_map_auto_on_the_real_pipeline(tiny: Path) -> None:
    text = load_runs.load_text(tiny, "auto")
    assert "NotImplementedError: auto not supported" in text, text[-2000:]
    assert finding_ids(text) == ["device-map-auto"], text[-2000:]


def test_the_preset_refuses_what_diffusers_refuses(tiny: Path) -> None:
    from diffusers.pipelines.pipeline_utils import SUPPORTED_DEVICE_MAP

    from intelligensi_deploy.preset_device_map import PIPELINE_DEVICE_MAPS, device_map_problem

    assert set(SUPPORTED_DEVICE_MAP) <= set(PIPELINE_DEVICE_MAPS)
    assert device_map_problem("auto") is not None
    assert device_map_problem("balanced") is None


def test_requests_refused_by_huggingface_co() -> None:
    text = load_runs.hub_connection_refused()
    assert "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='huggingface.co'" \
        in text, text[-2000:]
    assert finding_ids(text) == ["hf-unreachable"], text[-2000:]
