"""The end-to-end harness: every part real except Lambda's API and the Hugging Face Hub.

- a Docker engine, the server image built offline, a private registry with auth (ghcr.io's
  stand-in) holding that image: tests/fixtures/docker_env.py;
- an OpenSSH sshd on 127.0.0.1 and 127.0.0.2 acting as the VM: tests/fixtures/sshd.py;
- the fake Lambda API (validated against the OpenAPI file): tests/fakes/fake_lambda.py;
- a fake Hugging Face Hub serving a tiny FLUX model, gated behind a token:
  tests/fakes/fake_hf_hub.py. The container reaches it on the Docker bridge's gateway address
  (a network namespace this harness made), everything else is loopback.

`fluxdeploy` runs as a subprocess, as a user would run it, with default signal dispositions
(tests/conftest.py resets a SIG_IGN this pytest inherited, so `cli` and `spawn` children never
start with SIGINT ignored); `spawn` checks it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.fakes.fake_hf_hub import FakeHfHub
from tests.fakes.fake_lambda import FakeLambda
from tests.fixtures.dispositions import ignored_signals
from tests.fixtures.docker_env import (  # noqa: F401  (pytest fixtures, imported by name)
    Registry,
    docker,
    docker_engine,
    free_port,
    registry,
    server_image,
)
from tests.fixtures.sshd import SSHServer

if TYPE_CHECKING:
    from typing_extensions import Self

REPO = Path(__file__).resolve().parents[2]
HF_TOKEN = "hf_E2eSecretToken0123456789abcdefXYZ"
LAMBDA_KEY = "secret_e2e-lambda-key_0123456789abcdef"
PUBLIC_REPO = "fluxdeploy-e2e/tiny-flux"
GATED_REPO = "fluxdeploy-e2e/tiny-flux-gated"
INSTANCE_TYPE = "gpu_1x_a10"
REGION = "us-east-1"


def bridge_gateway() -> str:
    out = docker("network", "inspect", "bridge", "-f",
                 "{{(index .IPAM.Config 0).Gateway}}").stdout.strip()
    return out or "172.17.0.1"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from flux_server.tiny import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny-flux") / "model")


@pytest.fixture(scope="session")
def hub(docker_engine: Any, tiny_model_dir: Path) -> Iterator[FakeHfHub]:  # noqa: F811
    with FakeHfHub(host=bridge_gateway()) as fake:
        fake.add_repo(PUBLIC_REPO, tiny_model_dir, gated=True, tokens=[HF_TOKEN])
        fake.add_repo(GATED_REPO, tiny_model_dir, gated=True, tokens=["hf_someoneElse000"])
        yield fake


@pytest.fixture(scope="session")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """The 'VM': a real sshd on 127.0.0.1 and 127.0.0.2 (same port)."""
    server = SSHServer(tmp_path_factory.mktemp("vm"), listen_addresses=("127.0.0.1", "127.0.0.2"))
    with server:
        yield server


@dataclass
class E2E:
    """One test's world: a fake Lambda, a preset, a state folder, and the CLI to drive."""

    tmp: Path
    vm: SSHServer
    lam: FakeLambda
    registry: Registry
    hub: FakeHfHub
    env: dict[str, str] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)

    def preset(self, name: str = "e2e", **overrides: Any) -> Path:
        """Write a preset deploying the registry's image to the 'VM' through fake Lambda."""
        data: dict[str, Any] = {
            "description": "end-to-end test preset",
            "provider": "lambda",
            "lambda": {"instance_type": INSTANCE_TYPE, "regions": [REGION],
                       "ssh_key_name": "e2e"},
            "ssh": {"user": self.vm.user, "port": self.vm.port,
                    "key_path": str(self.vm.client_key_path)},
            "image": self.registry.image,
            "server": {"model": PUBLIC_REPO, "memory": "cpu", "dtype": "fp32"},
            "gpus": False,
            "port": free_port(),
            "env": {"HF_ENDPOINT": self.hub.url, "HF_HUB_DISABLE_XET": "1"},
            "ready_timeout": 240,
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        path = self.tmp / "presets" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data))
        return path

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 400,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "intelligensi_deploy", *args],
            env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout,
            input=stdin, cwd=self.tmp, check=False,
        )
        self.outputs.append(result.stdout + result.stderr)
        return result

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        """Start the CLI in its own session (signals reach it alone), default dispositions."""
        inherited = ignored_signals() & {signal.SIGINT, signal.SIGTERM}
        assert not inherited, f"children would start with {inherited} ignored"
        return subprocess.Popen(
            [sys.executable, "-m", "intelligensi_deploy", *args], env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=self.tmp,
            start_new_session=True,
        )

    def state(self, name: str = "e2e") -> dict[str, Any]:
        path = self.tmp / "home" / "deployments" / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def containers(self, name: str) -> list[str]:
        out = docker("ps", "-a", "-q", "--filter", f"label=fluxdeploy.deployment={name}")
        return out.stdout.split()

    def launches(self) -> int:
        return len([r for r in self.lam.calls("POST", "/instance-operations/launch")
                    if r.status == 200])


@pytest.fixture
def e2e(tmp_path: Path, vm: SSHServer, registry: Registry,  # noqa: F811
        hub: FakeHfHub) -> Iterator[E2E]:
    lam = FakeLambda(api_key=LAMBDA_KEY, capacity={INSTANCE_TYPE: [REGION]}, boot_seconds=1.0,
                     instance_ip="127.0.0.1", launch_interval_s=0.0)
    lam.add_ssh_key("e2e", vm.client_public_key)
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir()
    vm.set_session_env(DOCKER_CONFIG=str(docker_config))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGING", "GHCR_", "LAMBDA_", "FLUXDEPLOY_"))}
    env.update({
        "FLUXDEPLOY_HOME": str(tmp_path / "home"),
        "FLUXDEPLOY_CONFIG": str(tmp_path / "config"),
        "LAMBDA_API_KEY": LAMBDA_KEY,
        "HF_TOKEN": HF_TOKEN,
        "GHCR_TOKEN": registry.password,
        "GHCR_USERNAME": registry.username,
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "200",
    })
    with lam:
        env["LAMBDA_API_URL"] = lam.url
        world = E2E(tmp=tmp_path, vm=vm, lam=lam, registry=registry, hub=hub, env=env)
        yield world
        # Leave nothing running: containers of this test's deployments, whatever happened
        # (the default name too: a record forgotten by `down` names nothing any more).
        names = {p.stem for p in (tmp_path / "home" / "deployments").glob("*.json")} | {"e2e"}
        for name in names:
            for cid in world.containers(name):
                docker("rm", "-f", cid, check=False)
        assert lam.violations == [], f"OpenAPI contract violations: {lam.violations}"


class ArgvSampler:
    """Samples the argv of every process on the machine while running (`ps -eo args`)."""

    def __init__(self) -> None:
        self.samples: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False)
            self.samples.append(out.stdout)
            self._stop.wait(0.05)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def interrupt(process: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    os.killpg(process.pid, sig)
    process.wait(timeout=30)


def wait_for(predicate: Any, timeout: float = 60.0, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not met in time")
