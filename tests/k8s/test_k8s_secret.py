"""`fluxdeploy k8s secret` prints kubectl lines that read each secret from the environment:
run against a stand-in kubectl, the token reaches it on stdin, never in argv or output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from intelligensi_deploy.cli import app
from tests.k8s.helpers import TEAM

TOKEN = "hf_SENTINELtokenSENTINEL0123456789"
API_KEY = "flux-SENTINEL-key-0123456789abcdef"

FAKE_KUBECTL = """#!/bin/sh
# records argv (one word per line) and stdin
printf '%s\\n' "$@" >> "$RECORD.argv"
cat > "$RECORD.stdin.$(echo "$@" | sed 's/.*generic \\([^ ]*\\).*/\\1/')"
"""


def _lines(*args: str) -> list[str]:
    result = CliRunner().invoke(app, ["k8s", "secret", *args])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def _run_lines(lines: list[str], tmp_path: Path, **unset: bool) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    record = tmp_path / "rec"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HF_TOKEN": TOKEN,
           "FLUX_API_KEY": API_KEY, "RECORD": str(record)}
    for name in unset:
        env.pop(name)
    script = "\n".join(line for line in lines if not line.startswith("#"))
    subprocess.run(["bash", "-uc", script], env=env, check=False, timeout=30)
    return record


def test_hf_token_line_pipes_the_token_from_the_environment(tmp_path: Path) -> None:
    lines = _lines("--preset", "lambda-a100", "--name", "dev")
    assert not any(TOKEN in line for line in lines)
    record = _run_lines(lines, tmp_path)
    argv = Path(f"{record}.argv").read_text()
    assert TOKEN not in argv
    assert "fluxdeploy-dev-hf-token" in argv and "--namespace\ndefault" in argv
    assert Path(f"{record}.stdin.fluxdeploy-dev-hf-token").read_text() == TOKEN  # no newline


def test_nothing_is_created_while_the_token_is_not_exported(tmp_path: Path) -> None:
    record = _run_lines(_lines("--preset", "lambda-a100"), tmp_path, HF_TOKEN=True)
    assert not Path(f"{record}.argv").exists()


def test_public_preset_also_creates_the_api_keys_secret(tmp_path: Path) -> None:
    preset = tmp_path / "team.yaml"
    preset.write_text(TEAM + "exposure: public\nkubernetes: {namespace: gpu-team}\n")
    lines = _lines("--preset", str(preset))
    record = _run_lines(lines, tmp_path)
    argv = Path(f"{record}.argv").read_text()
    assert API_KEY not in argv and "--namespace\ngpu-team" in argv
    keys = Path(f"{record}.stdin.fluxdeploy-team-api-keys").read_text()
    # the server's keys file: one key per line (server/flux_server/auth.py parse_keys)
    assert keys.splitlines() == [API_KEY]
    assert "--from-file=api-keys=/dev/stdin" in argv


def test_tunnel_preset_has_no_api_keys_secret(tmp_path: Path) -> None:
    preset = tmp_path / "team.yaml"
    preset.write_text(TEAM)
    assert not any("api-keys" in line for line in _lines("--preset", str(preset)))


def test_render_command_writes_one_file_per_object(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["k8s", "render", "--preset", "lambda-a100", "--image",
                                      "ghcr.io/acme/flux-server:1.0", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "10-persistentvolumeclaim.yaml", "20-deployment.yaml", "30-service.yaml",
        "hpa.yaml.example"]  # never applied: kubectl apply -f DIR reads .yaml/.yml/.json
    example = (out / "hpa.yaml.example").read_text().splitlines()
    assert example and all(line.startswith("#") for line in example)
    assert f"kubectl apply -f {out}" in result.output


def test_render_command_refuses_bundled_with_exit_2() -> None:
    out = subprocess.run([sys.executable, "-m", "intelligensi_deploy", "k8s", "render",
                          "--preset", "lambda-a100"], capture_output=True, text=True,
                         check=False, timeout=60)
    assert out.returncode == 2 and out.stdout == ""
    assert "image: 'bundled' cannot run on Kubernetes" in out.stderr
    assert "Fix: publish the bundled server with `fluxdeploy image build" in out.stderr
