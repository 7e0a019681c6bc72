"""The code stays lint-clean: `ruff check` (pinned in the [test] extra) on what `make lint` checks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PATHS = ["intelligensi_deploy", "server/flux_server", "server/tests", "tests", "bench"]


def test_ruff_finds_nothing() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: `make install` installs it (the [test] extra)")
    proc = subprocess.run([ruff, "check", *PATHS], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
