"""A deployment whose container was stopped (`docker stop`, as a reboot or a tidy-up does)
is named as stopped by doctor, with `fluxdeploy up` as the fix, not as a crash.

The container is the real server image (tiny pipeline, CPU) stopped with the real
`docker stop`: uvicorn's own graceful shutdown ends its log, and it exits 0. doctor runs as
the CLI, on the local provider and on the test sshd "VM" (the same engine behind it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from intelligensi_deploy.presets import load_preset
from intelligensi_deploy.state import Deployment, StateStore
from tests.fixtures.docker_env import docker, docker_run, ensure_engine, ensure_server_image
from tests.fixtures.sshd import SSHServer

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def stopped() -> Iterator[tuple[str, str]]:
    """A server container that ran, then was stopped with `docker stop`: (name, image)."""
    ensure_engine()
    image = ensure_server_image()
    name = f"fluxdeploy-stopped-{uuid.uuid4().hex[:8]}"
    docker_run(image, name=name, env=load_preset("local").server.container_env())
    try:
        deadline = time.monotonic() + 120
        while "model ready" not in logs(name):  # a deployment that was ready, then stopped
            assert time.monotonic() < deadline, logs(name)
            time.sleep(0.5)
        docker("stop", name)
        yield name, image
    finally:
        docker("rm", "-f", name, check=False)


def logs(name: str) -> str:
    done = docker("logs", name, check=False)
    return done.stdout + done.stderr


def doctor(home: Path) -> str:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLUXDEPLOY_", "HF_", "GHCR_", "LAMBDA_"))}
    env.update(FLUXDEPLOY_HOME=str(home), COLUMNS="200", NO_COLOR="1")
    done = subprocess.run([sys.executable, "-m", "intelligensi_deploy", "doctor", "--name",
                           "demo"], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=180, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    return done.stdout + done.stderr


def assert_named_stopped(out: str, preset: str) -> None:
    assert "Container is stopped (exit 0): it was stopped, not crashed" in out
    assert "the log ends with the server's graceful shutdown" in out
    assert f"fluxdeploy up --preset {preset} --name demo" in out
    assert "Read the logs check below" not in out
    assert "exec` cannot enter it" not in out  # it did not exit at once
    assert "still-loading" not in out  # it had loaded; a stopped server loads nothing


def test_a_stopped_container_on_the_local_provider(tmp_path: Path,
                                                   stopped: tuple[str, str]) -> None:
    name, image = stopped
    StateStore(tmp_path).save(Deployment(name="demo", preset="local", provider="local",
                                         phase="ready", container_name=name, image=image))
    out = doctor(tmp_path)
    print(out)  # the container section, for the record
    assert_named_stopped(out, "local")


def test_a_stopped_container_on_the_vm(tmp_path: Path, sshd: SSHServer,
                                       stopped: tuple[str, str]) -> None:
    name, image = stopped
    preset = tmp_path / "vm.yaml"
    preset.write_text(
        f"provider: ssh\nssh: {{host: {sshd.host}, port: {sshd.port}, user: {sshd.user}, "
        f"key_path: {sshd.client_key_path}}}\nimage: {image}\ngpus: false\n"
        "server: {model: tiny, memory: cpu}\n")
    StateStore(tmp_path).save(Deployment(
        name="demo", preset=str(preset), provider="ssh", phase="ready", ip=sshd.host,
        ssh_port=sshd.port, ssh_user=sshd.user, ssh_key_path=str(sshd.client_key_path),
        host_key=sshd.host_public_key, container_name=name, image=image))
    assert_named_stopped(doctor(tmp_path), str(preset))
