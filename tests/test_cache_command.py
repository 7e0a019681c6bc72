"""`fluxdeploy cache verify / clear` end to end on this machine: the tiny pipeline downloaded
from the fake hub into an HF cache, a safetensors file really truncated and a download really
interrupted in it, then `check_cache` through a LocalHost and a stand-in `docker` that runs
the argv's `python -m flux_server.cache_check` for real with /data/hf mapped to the cache
(no server image can be built here in seconds; the mount and the argv are what is tested)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from intelligensi_deploy.cache_check import (
    CacheCheckError,
    broken_count,
    check_cache,
    report_lines,
)
from intelligensi_deploy.remote.local_host import LocalHost
from tests.fixtures import load_runs

pytest.importorskip("diffusers")
SERVER = Path(__file__).resolve().parents[1] / "server"
CONTAINER = "fluxdeploy-cachetest"

STAND_IN = f"""#!{sys.executable}
import json, os, subprocess, sys
args = sys.argv[1:]
with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[0] == "version":
    print("stand-in"); sys.exit(0)
if args[0] == "inspect":
    if args[-1] != {CONTAINER!r}:
        print(f"Error: No such container: {{args[-1]}}", file=sys.stderr); sys.exit(1)
    print(json.dumps([{{"Config": {{"Image": "fluxdeploy-server:test"}}, "Mounts": [
        {{"Type": "bind", "Source": os.environ["FAKE_CACHE"], "Destination": "/data/hf"}}]}}]))
    sys.exit(0)
assert args[:6] == ["run", "--rm", "--network", "none", "-v",
                    os.environ["FAKE_CACHE"] + ":/data/hf" + ("" if "--clear" in args else ":ro")], args
assert args[6:11] == ["fluxdeploy-server:test", "python", "-m", "flux_server.cache_check",
                      "/data/hf"], args
env = {{**os.environ, "PYTHONPATH": {str(SERVER)!r}}}
sys.exit(subprocess.run([sys.executable, "-m", "flux_server.cache_check",
                         os.environ["FAKE_CACHE"], *args[11:]], env=env).returncode)
"""


@pytest.fixture()
def broken_cache(tiny_pipeline: Path, tmp_path: Path, monkeypatch) -> Path:
    from tests.fakes.fake_hf_hub import FakeHfHub

    home = tmp_path / "hf"
    with FakeHfHub() as hub:
        hub.add_repo(load_runs.REPO, tiny_pipeline)
        load_runs.truncated_in_data(load_runs.download(hub.url, home))
        hub.add_repo("org/slow", tiny_pipeline, bytes_per_second=50_000)
        load_runs.interrupted_download(hub.url, home, repo="org/slow")
    (home / "compile-cache" / "key").mkdir(parents=True)
    (home / "compile-cache" / "key" / "graph.bin").write_bytes(b"x" * 1000)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(STAND_IN)
    docker.chmod(docker.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CACHE", str(home))
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(tmp_path / "docker.log"))
    return home


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(SERVER))
    from flux_server.tiny import save_tiny_pipeline  # lazy: the server package, tests only

    return save_tiny_pipeline(tmp_path_factory.mktemp("cache") / "tiny")


def test_verify_names_the_truncated_file_and_the_interrupted_download(broken_cache: Path
                                                                      ) -> None:
    report = check_cache(LocalHost(), CONTAINER)
    by_repo = {m["repo"]: m for m in report["models"]}
    assert [(b["path"], b["problem"]) for b in by_repo["org/tiny"]["broken"]] == [
        (load_runs.TRANSFORMER, "truncated: 147972 of 295944 bytes")]
    assert by_repo["org/slow"]["incomplete"], report
    assert broken_count(report) == 1 + len(by_repo["org/slow"]["incomplete"])
    lines = report_lines(report)
    assert f"  cache-corrupt: {load_runs.TRANSFORMER}: truncated: 147972 of 295944 bytes" \
        in lines
    assert any("left by an interrupted download" in line for line in lines)
    assert "compile cache: 1,000 bytes" in lines
    assert report["removed"] == []
    assert (broken_cache / "compile-cache").is_dir()  # verify removes nothing


def test_clear_compiled_removes_what_is_broken_and_the_compiled_graphs(broken_cache: Path
                                                                      ) -> None:
    report = check_cache(LocalHost(), CONTAINER, clear=True, compiled=True)
    removed = report["removed"]
    assert any(path.endswith(load_runs.TRANSFORMER) for path in removed), removed
    assert "compile-cache" in removed
    assert not (broken_cache / "compile-cache").exists()
    after = check_cache(LocalHost(), CONTAINER)
    assert broken_count(after) == 0, after
    log = [json.loads(line) for line in
           Path(os.environ["FAKE_DOCKER_LOG"]).read_text().splitlines()]
    runs = [args for args in log if args[0] == "run"]
    assert runs[0][5].endswith(":/data/hf") and runs[1][5].endswith(":/data/hf:ro")


def test_no_container_is_an_error_naming_the_next_step(broken_cache: Path) -> None:
    with pytest.raises(CacheCheckError) as caught:
        check_cache(LocalHost(), "fluxdeploy-other")
    assert "No container fluxdeploy-other" in str(caught.value)
    assert "fluxdeploy up" in (caught.value.fix or "")


def fluxdeploy(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a fresh process, on a record of a local deployment."""
    from intelligensi_deploy.state import Deployment, StateStore

    home = tmp_path / "home"
    StateStore(home).save(Deployment(name="here", preset="local", provider="local",
                                     container_name=CONTAINER, phase="ready"))
    return subprocess.run([sys.executable, "-m", "intelligensi_deploy", *args],
                          env={**os.environ, "FLUXDEPLOY_HOME": str(home), "COLUMNS": "200"},
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_commands_exit_1_on_a_broken_cache_and_0_once_cleared(broken_cache: Path,
                                                                  tmp_path: Path) -> None:
    verify = fluxdeploy(tmp_path, "cache", "verify", "--name", "here")
    assert verify.returncode == 1, verify.stdout + verify.stderr
    assert "HF cache of 'here' on local:" in verify.stdout
    assert "org/tiny: 1 broken (1 snapshot(s), hub/models--org--tiny)" in verify.stdout
    assert f"cache-corrupt: {load_runs.TRANSFORMER}: truncated: 147972 of 295944 bytes" \
        in verify.stdout
    assert "fluxdeploy cache clear" in verify.stderr
    cleared = fluxdeploy(tmp_path, "cache", "clear", "--name", "here")
    assert cleared.returncode == 0, cleared.stdout + cleared.stderr
    assert "removed: hub/models--org--tiny/snapshots/" in cleared.stdout
    again = fluxdeploy(tmp_path, "cache", "verify", "--name", "here", "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    report = json.loads(again.stdout)
    assert broken_count(report) == 0
    assert report["compile_cache_bytes"] == 1000  # clear without --compiled keeps it
