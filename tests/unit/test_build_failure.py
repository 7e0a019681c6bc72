"""`image-build-failed`: the cause of a failed build told from genuine docker and pip texts.

The texts in build_texts/ were produced on the build machine: the `build_*` files are the
records `up` keeps of real failed builds of server/Dockerfile (docker 20.10, offline base
registry; pip without a matching torch); the `pip_*` files are pip's own output (disk full
from a 64 MB tmpfs, conflicting pins, no network), which a build prints the same way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from intelligensi_deploy.diagnosis.build_failure import FAILED_HEADER, build_failure_finding
from intelligensi_deploy.diagnosis.diagnose import clean_lines, diagnose
from intelligensi_deploy.doctor.runner import run_checks
from tests.unit.test_doctor_checks import check, make_deps

TEXTS = Path(__file__).parent / "build_texts"
STEP = "Step 14/30 : RUN set -eu; /opt/venv/bin/pip install -r requirements.txt"
FOOTER = "The command '/bin/sh -c set -eu; ...' returned a non-zero code: 1"


def as_build(pip_text: str) -> str:
    """pip's output where a build prints it: after the step, before docker's verdict."""
    return f"{FAILED_HEADER} for fluxdeploy/flux-server:0123456789ab (exit 1)\n{STEP}\n" \
        f"{pip_text}\n{FOOTER}\n"


def cause(text: str) -> str:
    finding = build_failure_finding(clean_lines(text))
    assert finding is not None and finding.id == "image-build-failed"
    return finding.title.rsplit("[", 1)[1].rstrip("]")


def test_no_network_to_the_base_registry() -> None:
    text = (TEXTS / "build_base_registry_unreachable.txt").read_text()
    assert cause(text) == "base-registry"
    finding = build_failure_finding(clean_lines(text))
    assert any("registry-1.docker.io" in line for line in finding.evidence)
    assert "base_image" in finding.fix


def test_a_base_image_that_does_not_exist_offline_reads_as_no_network() -> None:
    # Offline the engine asks the registry first: the same words as no network.
    assert cause((TEXTS / "build_base_missing_offline.txt").read_text()) == "base-registry"


@pytest.mark.parametrize("line", [
    ("Error response from daemon: pull access denied for fluxdeploy/nope, repository does not "
     "exist or may require 'docker login': denied: requested access to the resource is denied"),
    "manifest for nvidia/cuda:99 not found: manifest unknown: manifest unknown",
])
def test_a_missing_base_image_with_network(line: str) -> None:
    assert cause(f"Step 2/30 : FROM ${{BASE_IMAGE}} AS runtime-base\n{line}\n") == "base-missing"


def test_disk_full() -> None:
    text = as_build((TEXTS / "pip_disk_full.txt").read_text())
    assert cause(text) == "disk-full"
    assert "docker system prune" in build_failure_finding(clean_lines(text)).fix


def test_pip_resolution_from_a_real_build_and_from_conflicting_pins() -> None:
    assert cause((TEXTS / "build_pip_no_matching_version.txt").read_text()) == "pip-resolution"
    assert cause(as_build((TEXTS / "pip_no_matching_version.txt").read_text())) == \
        "pip-resolution"
    assert cause(as_build((TEXTS / "pip_resolution_impossible.txt").read_text())) == \
        "pip-resolution"


def test_no_network_to_pypi_is_not_a_resolution_problem() -> None:
    # pip in a container with --network none
    assert cause(as_build((TEXTS / "pip_index_unreachable.txt").read_text())) == "package-index"


def test_an_unknown_failure_still_gives_the_finding_with_the_last_lines() -> None:
    finding = build_failure_finding(clean_lines(as_build("something odd happened")))
    assert finding is not None and finding.evidence[-1] == FOOTER


def test_a_container_log_is_not_a_build_log() -> None:
    assert build_failure_finding(["INFO: Uvicorn running on http://0.0.0.0:8000"]) is None
    assert build_failure_finding(["Step 3/30 : ARG APP_UID=1000", " ---> Using cache"]) is None


def test_diagnose_of_a_saved_build_log_gives_the_one_build_finding() -> None:
    findings = diagnose(as_build((TEXTS / "pip_disk_full.txt").read_text()))
    assert [f.id for f in findings] == ["image-build-failed"]  # not also a generic disk-full


# --------------------------------------------------------------------------- doctor's check


def test_doctor_reads_the_recorded_failed_build() -> None:
    log = (TEXTS / "build_pip_no_matching_version.txt").read_text()
    deps = make_deps(image_source="bundled", image="fluxdeploy/flux-server:79f0c3f71170")
    deps.build_log = lambda: log
    report = run_checks(deps)
    image = check(report, "image")
    assert image.status == "fail" and image.doc == "image-build-failed"
    assert "[pip-resolution]" in image.title
    assert any("torch==0.0.1" in line for line in image.evidence)
    assert "image-build-failed" in [f.id for f in report.findings]


def test_doctor_passes_when_the_tag_is_on_the_host_and_skips_registry_images() -> None:
    report = run_checks(make_deps(image_source="bundled", image="fluxdeploy/flux-server:ab"))
    assert check(report, "image").status == "pass"
    report = run_checks(make_deps(image_source="registry", image="ghcr.io/x/flux-server:1"))
    assert check(report, "image").status == "skip"
