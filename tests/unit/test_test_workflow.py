""".github/workflows/test.yml, checked offline: actionlint (with shellcheck on its `run:`
script), and that it runs the README's test command on pushes and pull requests."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.unit.test_image_workflow import actionlint

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "test.yml"


def _workflow() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def test_actionlint_and_shellcheck_find_nothing() -> None:
    result = actionlint(WORKFLOW)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_it_runs_on_push_and_pull_request_with_read_only_permissions() -> None:
    data = _workflow()
    assert set(data["on"]) == {"push", "pull_request"}
    assert data["permissions"] == {"contents": "read"}


def test_it_runs_the_readme_test_command() -> None:
    """The one step that runs tests is `.ci/run`, which runs `make test`, the README's
    second command; the README names the same command."""
    job = _workflow()["jobs"]["test"]
    runs = [s["run"] for s in job["steps"] if "run" in s]
    assert [r for r in runs if "bash .ci/run" in r] == [runs[-1]]
    assert job["container"]["image"] == "debian:12"  # the README's machine
    assert "\nmake test\n" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()
