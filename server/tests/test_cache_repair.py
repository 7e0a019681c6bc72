"""A broken HF cache is named and, where the Hub can help, mended: safetensors files really
truncated (in the data, in the header, to a few bytes) or replaced by a Git LFS pointer in the
tiny pipeline's cache, and a download really interrupted (.incomplete left), each judged by
cache_check as the safetensors library judges it and downloaded again from the fake hub."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from flux_server.cache_check import CacheCorrupt, broken_files, safetensors_problem
from flux_server.config import Settings
from flux_server.failures import explain

from tests.fixtures import load_runs
from tests.fixtures.load_runs import run_repair

TRANSFORMER = load_runs.TRANSFORMER
SERVER = Path(__file__).resolve().parents[1]


def safetensors_refuses(path: Path) -> str | None:
    """The safetensors library's own verdict: its error text, or None when it loads."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                f.get_tensor(key)
    except (SafetensorError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture()
def copy(tiny_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_dir, tmp_path / "copy"))


SPOILS = {
    "in the data": (load_runs.truncated_in_data, "truncated: "),
    "in the header": (load_runs.truncated_in_header, "truncated in its header: "),
    "to five bytes": (lambda folder: load_runs.truncate(folder / TRANSFORMER, 5),
                      "shorter than the 8-byte header length"),
    "an LFS pointer": (load_runs.lfs_pointer, "a Git LFS pointer"),
}


def test_a_whole_pipeline_has_no_broken_file(copy: Path) -> None:
    assert broken_files(copy) == []
    assert all(safetensors_refuses(p) is None for p in copy.rglob("*.safetensors"))


@pytest.mark.parametrize("how", list(SPOILS))
def test_each_real_cut_is_named_as_safetensors_refuses_it(copy: Path, how: str) -> None:
    spoil, words = SPOILS[how]
    spoil(copy)
    refused = safetensors_refuses(copy / TRANSFORMER)
    assert refused is not None and "SafetensorError" in refused, refused
    assert [b.path for b in broken_files(copy)] == [TRANSFORMER]
    assert words in (safetensors_problem(copy / TRANSFORMER) or "")


def test_a_truncated_blob_is_downloaded_again(fake_hub, hub_names, tmp_path: Path) -> None:
    repo, home = hub_names["open_repo"], tmp_path / "hf"
    first = run_repair(fake_hub.url, home, repo)
    assert first.returncode == 0, first.stderr[-2000:]
    snapshot = Path(first.stdout.strip().splitlines()[-1])
    load_runs.truncated_in_data(snapshot)
    size = (snapshot / TRANSFORMER).stat().st_size

    second = run_repair(fake_hub.url, home, repo)
    assert second.returncode == 0, second.stderr[-2000:]
    assert (f"WARNING flux_server.download cache-corrupt: {TRANSFORMER}: truncated: {size} of "
            in second.stderr), second.stderr[-2000:]
    assert "downloading it again" in second.stderr
    assert broken_files(snapshot) == []
    assert safetensors_refuses(snapshot / TRANSFORMER) is None


def test_a_hub_copy_that_stays_broken_fails_naming_the_file(fake_hub, copy: Path,
                                                            tmp_path: Path) -> None:
    load_runs.truncated_in_data(copy)
    fake_hub.add_repo("org/broken-on-the-hub", copy)
    done = run_repair(fake_hub.url, tmp_path / "hf", "org/broken-on-the-hub")
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("flux_server.cache_check.CacheCorrupt: broken file(s) in the HF "
                           f"cache: {TRANSFORMER}: truncated: "), last


def test_the_failure_reason_carries_the_fix() -> None:
    failure = explain(CacheCorrupt("broken files ...", "delete them"), Settings(model="x"))
    assert failure.type == "CacheCorrupt" and failure.hint == "delete them"


def test_an_interrupted_download_is_named_and_resumed(tiny_dir: Path, tmp_path: Path) -> None:
    from tests.fakes.fake_hf_hub import FakeHfHub

    with FakeHfHub() as hub:
        hub.add_repo(load_runs.REPO, tiny_dir, bytes_per_second=50_000)
        left = load_runs.interrupted_download(hub.url, tmp_path / "hf")
        assert left, "the download finished before the kill"
        hub.add_repo(load_runs.REPO, tiny_dir)  # full speed for the resume
        done = run_repair(hub.url, tmp_path / "hf", load_runs.REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cache-corrupt: an interrupted download left" in done.stderr
    assert left[0].name in done.stderr
    assert broken_files(Path(done.stdout.strip().splitlines()[-1])) == []


def test_the_cache_check_command_reports_and_clears(fake_hub, hub_names, tmp_path: Path
                                                    ) -> None:
    home = tmp_path / "hf"
    first = run_repair(fake_hub.url, home, hub_names["open_repo"])
    assert first.returncode == 0, first.stderr[-2000:]
    load_runs.truncated_in_header(Path(first.stdout.strip().splitlines()[-1]))

    def check(*flags: str) -> dict:
        done = subprocess.run([sys.executable, "-m", "flux_server.cache_check", str(home),
                               *flags], capture_output=True, text=True, timeout=60,
                              check=True, env={**os.environ, "PYTHONPATH": str(SERVER)})
        return json.loads(done.stdout)

    [model] = check()["models"]
    assert model["repo"] == hub_names["open_repo"]
    assert [b["path"] for b in model["broken"]] == [TRANSFORMER]
    assert model["broken"][0]["problem"].startswith("truncated in its header: ")
    assert check("--clear")["removed"] == [
        f"{model['folder']}/snapshots/{model['broken'][0]['snapshot']}/{TRANSFORMER}"]
    assert check()["models"][0]["broken"] == []
    again = run_repair(fake_hub.url, home, hub_names["open_repo"])  # the next start
    assert again.returncode == 0 and "cache-corrupt" not in again.stderr, again.stderr[-2000:]
    assert broken_files(Path(again.stdout.strip().splitlines()[-1])) == []


def test_a_server_started_on_a_truncated_cache_mends_it_and_gets_ready(
        start_server, fake_hub, hub_names, tmp_path: Path) -> None:
    home = tmp_path / "hf"
    first = run_repair(fake_hub.url, home, hub_names["open_repo"])
    assert first.returncode == 0, first.stderr[-2000:]
    load_runs.truncated_in_data(Path(first.stdout.strip().splitlines()[-1]))
    server = start_server("cache-mend", FLUX_MODEL=hub_names["open_repo"],
                          HF_ENDPOINT=fake_hub.url, HF_HOME=str(home))
    body = server.wait_state("ready", "failed")
    assert body["state"] == "ready", body
    log = server.log_text()
    assert f"cache-corrupt: {TRANSFORMER}: truncated: 147972 of 295944 bytes" in log, log[-3000:]
    assert f"cache: 1 broken file(s) downloaded again: {TRANSFORMER}" in log


def test_a_local_model_folder_of_lfs_pointers_fails_before_loading(copy: Path) -> None:
    from flux_server.loader import PipelineLoader
    from flux_server.state import LoadState

    load_runs.lfs_pointer(copy)
    settings = Settings(model=str(copy))
    loader = PipelineLoader(settings, LoadState(settings.model, False), detect_gpus=list)
    loader.run()
    error = loader.state.snapshot()["error"]
    assert error["type"] == "CacheCorrupt", error
    assert error["message"].startswith(f"broken file(s) in the model folder: {TRANSFORMER}: "
                                       "a Git LFS pointer")
    assert "git lfs pull" in error["hint"]
    assert loader.pipeline is None
