"""intelligensi_deploy type-checks strictly: `mypy` (in the [test] extra, with types-paramiko
and types-PyYAML) with the root pyproject.toml's [tool.mypy] (strict, files =
intelligensi_deploy) finds nothing. Run by hand the same way: `mypy` from the repository root.
The server has its own configuration and test (server/tests/test_types.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_strict_finds_nothing() -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.fail("mypy is not installed: it is in the [test] extra (`make install`, or "
                    "pip install -e '.[test]')")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml", "--no-error-summary"],
        cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
