"""flux_server type-checks: `mypy` (in the [test] extra) with server/pyproject.toml's
[tool.mypy] (check_untyped_defs: function bodies without annotations are checked too) finds
nothing. Run by hand the same way: `cd server && mypy --check-untyped-defs flux_server`."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SERVER_ROOT = Path(__file__).resolve().parents[1]


def test_mypy_finds_nothing() -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.fail("mypy is not installed: it is in the server's [test] extra "
                    "(pip install -e 'server[test]')")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml",
         "--check-untyped-defs", "--no-error-summary", "flux_server"],
        cwd=SERVER_ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
