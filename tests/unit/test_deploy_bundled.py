"""`up`'s bundled-image step over a fake Docker: the tag is reused when present, the context
goes as a tar on stdin of `docker build -` when not, and a failed build is recorded (0600)
for doctor and shown."""

from __future__ import annotations

import io
import stat
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from intelligensi_deploy.bundle.build import ImageBuildError, plan_build
from intelligensi_deploy.bundle.settings import BuildSettings
from intelligensi_deploy.deploy.dispatch import new_deployment
from intelligensi_deploy.deploy.steps import build_on_host
from intelligensi_deploy.presets import parse_preset
from intelligensi_deploy.remote.host import RunResult
from intelligensi_deploy.state import StateStore, Tracker, build_log_path

TEXTS = Path(__file__).parent / "build_texts"


class FakeHost:
    label = "ubuntu@203.0.113.7:22"


class FakeDocker:
    def __init__(self, *, has_tag: bool, build_output: str = "", build_code: int = 0) -> None:
        self.host = FakeHost()
        self.has_tag = has_tag
        self.build_output = build_output
        self.build_code = build_code
        self.builds: list[tuple[list[str], list[str]]] = []   # (argv, names in the tar)

    def image_exists(self, image: str) -> bool:
        return self.has_tag

    def run_docker(self, args: Sequence[str], *, stdin: Any = None, timeout: float | None = None,
                   on_output: Any = None) -> RunResult:
        assert list(args)[:1] == ["build"] and args[-1] == "-"
        data = stdin.read()
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            self.builds.append((list(args), tar.getnames()))
        for line in self.build_output.splitlines():
            on_output(line)
        return RunResult(tuple(args), self.build_code, self.build_output, "")


class UI:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, message: str) -> None:
        self.lines.append(message)

    detail = warn = progress_line = step


@pytest.fixture
def tracker(tmp_path: Path) -> Tracker:
    preset = parse_preset("provider: local\nimage: bundled\n", "b.yaml")
    return Tracker(StateStore(tmp_path), new_deployment(preset, "b", None))


def plan() -> Any:
    return plan_build(BuildSettings(extras=[]), {})


def test_a_host_with_the_tag_builds_nothing(tracker: Tracker) -> None:
    docker, ui = FakeDocker(has_tag=True), UI()
    build_on_host(plan(), tracker, docker, ui)
    assert docker.builds == []
    assert any("nothing to build" in line for line in ui.lines)


def test_the_context_is_streamed_to_docker_build_on_stdin(tracker: Tracker) -> None:
    output = "Step 20/30 : COPY flux_server /tmp/src/flux_server/\n ---> 9a0c2d1e3f4b\n"
    docker, ui = FakeDocker(has_tag=False, build_output=output), UI()
    the_plan = plan()
    build_on_host(the_plan, tracker, docker, ui)
    (argv, names), = docker.builds
    assert argv[:3] == ["build", "-t", the_plan.tag]
    assert "Dockerfile" in names and "flux_server/app.py" in names
    assert "step 20/30: built, layer 9a0c2d1e3f4b" in ui.lines
    assert not build_log_path(tracker.store, "b").exists()


def test_a_failed_build_is_recorded_for_doctor_and_shown(tracker: Tracker) -> None:
    failed = (TEXTS / "build_pip_no_matching_version.txt").read_text().split("\n", 1)[1]
    docker, ui = FakeDocker(has_tag=False, build_output=failed, build_code=1), UI()
    with pytest.raises(ImageBuildError) as err:
        build_on_host(plan(), tracker, docker, ui)
    assert err.value.doc == "image-build-failed" and "[pip-resolution]" in err.value.message
    record = build_log_path(tracker.store, "b")
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert "No matching distribution found for torch==0.0.1" in record.read_text()
    assert tracker.dep.phase == "failed"
    assert any(line.startswith("The image build failed. Last") for line in ui.lines)
    # fixed: the next good build removes the record
    build_on_host(plan(), tracker, FakeDocker(has_tag=False), UI())
    assert not record.exists()
