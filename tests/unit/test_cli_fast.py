"""The quick commands answer without loading what they do not need (issue 12, point 7).

`--help`, `presets list`, `status` (on records that hold nothing live) and `diagnose` load
neither the network stacks nor pydantic: typer's pydantic coercion is bypassed by
`cli_params`, status reads plain records, diagnose does not load doctor's checks. Their
speed is measured by bench/cli_startup.py; this checks the cause, not a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

NEVER = ("httpx", "paramiko", "torch", "diffusers", "pydantic", "pydantic_core",
         "typer._adapters")
QUICK = {
    "help": (["--help"], ()),
    "up-help": (["up", "--help"], ()),
    "presets-list": (["presets", "list"], ("yaml", "intelligensi_deploy.presets")),
    "status": (["status"], ("intelligensi_deploy.state", "intelligensi_deploy.status_live",
                            "intelligensi_deploy.machines", "intelligensi_deploy.remote.host")),
    "status-json": (["status", "--json"], ("intelligensi_deploy.state",)),
    "diagnose": (["diagnose", "LOG"], ("intelligensi_deploy.doctor.checks",
                                       "intelligensi_deploy.doctor.command",
                                       "intelligensi_deploy.state")),
}


def _quick_home(tmp_path: Path) -> tuple[Path, Path]:
    """A state folder with a finished deployment and a phantom, and a log with an error."""
    folder = tmp_path / "home" / "deployments"
    folder.mkdir(parents=True)
    (folder / "old.json").write_text(json.dumps(
        {"name": "old", "preset": "local", "provider": "local", "phase": "down",
         "updated_at": 2.0}))
    (folder / "ghost.json").write_text(json.dumps(
        {"name": "ghost", "preset": "lambda-a10", "provider": "lambda", "phase": "launching",
         "updated_at": 3.0}))
    log = tmp_path / "server.log"
    log.write_text("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20 MiB\n")
    return tmp_path / "home", log


@pytest.mark.parametrize("case", sorted(QUICK))
def test_quick_commands_do_not_import_heavy_modules(case: str, tmp_path: Path) -> None:
    argv, also_not = QUICK[case]
    home, log = _quick_home(tmp_path)
    argv = [str(log) if a == "LOG" else a for a in argv]
    watched = (*NEVER, *also_not)
    code = (
        f"import sys; sys.argv=['fluxdeploy', *{argv!r}]\n"
        "from intelligensi_deploy.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print('EXIT', code)\n"
        f"print('LOADED', sorted(m for m in {watched!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "FLUXDEPLOY_HOME": str(home)})
    assert "LOADED []" in out.stdout, out.stdout + out.stderr
    expected = "EXIT 1" if case == "diagnose" else "EXIT 0"  # the log holds an error
    assert expected in out.stdout, out.stdout + out.stderr
    if case.startswith("status"):
        assert "ghost" in out.stdout and "old" in out.stdout


def test_status_json_reports_records_from_the_file(tmp_path: Path) -> None:
    home, _ = _quick_home(tmp_path)
    out = subprocess.run([sys.executable, "-m", "intelligensi_deploy", "status", "--json"],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "FLUXDEPLOY_HOME": str(home)})
    reports = {r["name"]: r for r in json.loads(out.stdout)["deployments"]}
    assert list(reports) == ["ghost", "old"]  # most recent first
    assert reports["old"]["phase"] == "down" and "error" not in reports["old"]
    assert "nothing was launched" in reports["ghost"]["error"]
    assert reports["old"]["container"] is None and reports["old"]["ready"] is None


def test_bad_preset_exits_2_with_named_field(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("provider: local\nimage: x\nport: 99999\n")
    out = subprocess.run([sys.executable, "-m", "intelligensi_deploy", "presets", "show",
                          str(bad)], capture_output=True, text=True, check=False)
    assert out.returncode == 2
    assert "port" in out.stderr and "99999" in out.stderr and str(bad) in out.stderr


def test_presets_show_fills_defaults() -> None:
    out = subprocess.run([sys.executable, "-m", "intelligensi_deploy", "presets", "show",
                          "local"], capture_output=True, text=True, check=True)
    assert "model: tiny" in out.stdout and "ready_timeout: 300" in out.stdout
