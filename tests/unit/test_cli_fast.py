"""The CLI answers --help and presets list without loading the network stacks."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("argv", [["--help"], ["presets", "list"], ["up", "--help"]])
def test_no_heavy_imports(argv: list[str]) -> None:
    code = (
        "import sys; sys.argv=['fluxdeploy', *%r]\n"
        "from intelligensi_deploy.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('httpx', 'paramiko', 'torch', 'diffusers') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n" % (argv,)
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_bad_preset_exits_2_with_named_field(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("provider: local\nimage: x\nport: 99999\n")
    out = subprocess.run([sys.executable, "-m", "intelligensi_deploy", "presets", "show",
                          str(bad)], capture_output=True, text=True)
    assert out.returncode == 2
    assert "port" in out.stderr and "99999" in out.stderr and str(bad) in out.stderr


def test_presets_show_fills_defaults() -> None:
    out = subprocess.run([sys.executable, "-m", "intelligensi_deploy", "presets", "show",
                          "local"], capture_output=True, text=True, check=True)
    assert "model: tiny" in out.stdout and "ready_timeout: 300" in out.stdout
