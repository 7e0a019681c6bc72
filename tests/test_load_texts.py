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


@pytest.fixture(scope="module")
def hub(tiny: Path):
    from tests.fakes.fake_hf_hub import FakeHfHub

    with FakeHfHub() as fake:
        fake.add_repo(load_runs.REPO, tiny)
        yield fake


@pytest.mark.parametrize(("spoil", "named"), [
    (load_runs.truncated_in_data, load_runs.TRANSFORMER),
    (load_runs.truncated_in_header, load_runs.TRANSFORMER),
    (load_runs.lfs_pointer, "git-lfs")])  # diffusers' LFS message names no file
def test_a_really_broken_cache_file_is_cache_corrupt(hub, tmp_path: Path, spoil,
                                                     named: str) -> None:
    snapshot = load_runs.download(hub.url, tmp_path / "hf")
    spoil(snapshot)
    text = load_runs.load_text(snapshot)
    findings = diagnose(text)
    assert [f.id for f in findings] == ["cache-corrupt"], text[-2000:]
    assert any(named in line for line in findings[0].evidence), findings[0].evidence


def test_the_server_mends_a_truncated_file_and_says_so(hub, tmp_path: Path) -> None:
    load_runs.truncated_in_data(load_runs.download(hub.url, tmp_path / "hf"))
    done = load_runs.run_repair(hub.url, tmp_path / "hf")
    assert done.returncode == 0, done.stderr[-2000:]
    findings = diagnose(done.stderr)
    assert [(f.id, f.severity) for f in findings] == [("cache-corrupt", "warning")]
    assert load_runs.TRANSFORMER in findings[0].evidence[0]


def test_a_really_corrupt_compile_cache(tmp_path: Path) -> None:
    text = load_runs.corrupt_compile_cache(tmp_path)
    assert [(f.id, f.severity) for f in diagnose(text)] == [("cache-corrupt", "warning")], \
        text[-2000:]
