"""A deployment is recorded only while something exists to track (issue 12, point 1).

`up` failing before anything exists leaves no record; `down` forgets a record that holds
nothing without asking the cloud; status, doctor, logs, tunnel and generate name such a
record for what it is. Against the fake Lambda API (a real HTTP server) and, for the CLI, the
`fluxdeploy` command as a user runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from intelligensi_deploy.cloud.lambda_api import LambdaClient
from intelligensi_deploy.deploy import dispatch
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.health import ReadyStatus
from intelligensi_deploy.presets import load_preset
from intelligensi_deploy.state import Deployment, StateStore
from tests.fakes.fake_lambda import FakeLambda
from tests.fixtures.ports import free_port

KEY = "secret_records-test-key_0123456789abcdef"
RULE = {"protocol": "tcp", "port_range": [8000, 8000], "source_network": "203.0.113.7/32",
        "description": "fluxdeploy gpu"}


class Recorder:
    """deploy.reporter.Reporter that keeps what it was told."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, message: str) -> None:
        self.lines.append(message)

    detail = warn = step

    def ready_status(self, status: ReadyStatus, elapsed: float) -> None:
        self.lines.append(status.describe())


@pytest.fixture
def lam() -> Iterator[FakeLambda]:
    with FakeLambda(api_key=KEY, capacity={"gpu_1x_a10": [], "gpu_1x_a100": ["us-east-1"]},
                    launch_interval_s=0.0) as fake:
        yield fake
        assert fake.violations == []


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "home")


def _lambda_preset(tmp_path: Path, instance_type: str = "gpu_1x_a10",
                   exposure: str = "tunnel") -> Path:
    key = tmp_path / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)
    path = tmp_path / "gpu.yaml"
    path.write_text(
        f"provider: lambda\nlambda: {{instance_type: {instance_type}, regions: [us-east-1], "
        f"ssh_key_name: k}}\nssh: {{key_path: {key}}}\nimage: ghcr.io/x/y:1\n"
        f"exposure: {exposure}\npublic_cidr: 203.0.113.7/32\n")
    return path


def _phantom(store: StateStore, name: str = "lambda-a10", **fields: Any) -> Deployment:
    """A record as the old `up` left it after failing before the launch."""
    return store.save(Deployment(name=name, preset="lambda-a10", provider="lambda",
                                 phase="launching", instance_type="gpu_1x_a10", **fields))


# --------------------------------------------------------------------------- up, in process


def test_up_without_capacity_records_nothing(lam: FakeLambda, store: StateStore,
                                             tmp_path: Path) -> None:
    path = _lambda_preset(tmp_path)
    with pytest.raises(FluxdeployError, match="capacity"):
        dispatch.up(load_preset(str(path)), name="gpu", store=store, ui=Recorder(),
                  lambda_client=lambda: LambdaClient(KEY, lam.url), preset_ref=str(path))
    assert lam.calls("GET", "/instance-types")  # it got as far as choosing a region
    assert store.list() == []
    assert lam.instances == {}


def test_up_whose_recorded_instance_is_gone_forgets_it_when_the_relaunch_fails(
        lam: FakeLambda, store: StateStore, tmp_path: Path) -> None:
    path = _lambda_preset(tmp_path)
    store.save(Deployment(name="gpu", preset=str(path), provider="lambda", phase="ready",
                          instance_id="0123456789abcdef0123456789abcdef", ip="192.0.2.1",
                          region="us-east-1"))
    ui = Recorder()
    with pytest.raises(FluxdeployError, match="capacity"):
        dispatch.up(load_preset(str(path)), name="gpu", store=store, ui=ui,
                  lambda_client=lambda: LambdaClient(KEY, lam.url), preset_ref=str(path))
    assert any("is gone" in line for line in ui.lines)
    assert store.load("gpu") is None  # no record of an instance that does not exist


def test_gone_instance_keeps_the_record_of_its_firewall_rule_and_down_removes_it(
        lam: FakeLambda, store: StateStore, tmp_path: Path) -> None:
    lam.firewall_rules.append(dict(RULE))
    path = _lambda_preset(tmp_path, exposure="public")
    store.save(Deployment(name="gpu", preset=str(path), provider="lambda", phase="ready",
                          instance_id="0123456789abcdef0123456789abcdef", ip="192.0.2.1",
                          region="us-east-1", exposure="public", firewall_rule=dict(RULE)))
    client = lambda: LambdaClient(KEY, lam.url)
    with pytest.raises(FluxdeployError, match="capacity"):
        dispatch.up(load_preset(str(path)), name="gpu", store=store, ui=Recorder(),
                  lambda_client=client, preset_ref=str(path))
    kept = store.load("gpu")
    assert kept is not None and kept.instance_id is None and kept.phase == "launching"
    assert kept.firewall_rule == RULE  # the rule is account-wide: still there, still tracked

    assert dispatch.down(kept, store=store, ui=Recorder(), lambda_client=client) is not None
    assert RULE["description"] not in [r.get("description") for r in lam.firewall_rules]
    assert store.load("gpu").phase == "down"


def test_up_on_an_unreachable_ssh_host_records_nothing(store: StateStore, tmp_path: Path
                                                       ) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    path = tmp_path / "mine.yaml"
    path.write_text(f"provider: ssh\nssh: {{host: 127.0.0.1, port: {free_port()}, key_path: "
                    f"{key}}}\nimage: ghcr.io/x/y:1\n")
    with pytest.raises(FluxdeployError, match="did not answer"):
        dispatch.up(load_preset(str(path)), name="mine", store=store, ui=Recorder(),
                  ssh_timeout=0.2, preset_ref=str(path))
    assert store.list() == []


def test_down_forgets_a_phantom_without_asking_the_cloud(lam: FakeLambda, store: StateStore
                                                         ) -> None:
    ui = Recorder()
    asked: list[str] = []
    result = dispatch.down(_phantom(store), store=store, ui=ui,
                         lambda_client=lambda: asked.append("client") or LambdaClient(KEY, lam.url))
    assert result is None and store.load("lambda-a10") is None
    assert asked == [] and lam.requests == []
    assert "nothing was launched" in ui.lines[-1]


def test_resolve_prefers_a_deployment_that_holds_something(store: StateStore) -> None:
    store.save(Deployment(name="real", preset="lambda-a10", provider="lambda", phase="ready",
                          instance_id="abc", ip="192.0.2.1"))
    _phantom(store, name="newer-phantom")  # saved later: the most recent
    assert store.resolve(None).name == "real"
    assert store.resolve("newer-phantom").name == "newer-phantom"


# --------------------------------------------------------------------------- the CLI


def _cli(home: Path, *args: str, lam: FakeLambda | None = None, key: str | None = KEY
         ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMBDA_", "FLUXDEPLOY_"))}
    env.update(FLUXDEPLOY_HOME=str(home), COLUMNS="200")
    if lam is not None:
        env["LAMBDA_API_URL"] = lam.url
    if key:
        env["LAMBDA_API_KEY"] = key
    return subprocess.run([sys.executable, "-m", "intelligensi_deploy", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_cli_up_without_api_key_leaves_no_record(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = _cli(home, "up", "--preset", "lambda-a10", key=None)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "LAMBDA_API_KEY" in result.stderr
    assert not list(home.glob("deployments/*.json"))
    status = _cli(home, "status", "--json")
    assert status.returncode == 0 and json.loads(status.stdout) == {"deployments": []}


def test_cli_down_forgets_a_phantom_without_an_api_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _phantom(StateStore(home))
    result = _cli(home, "down", key=None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Forgot deployment 'lambda-a10'" in result.stdout
    assert not (home / "deployments" / "lambda-a10.json").exists()


def test_cli_status_and_doctor_name_a_phantom_and_ask_no_one(lam: FakeLambda, tmp_path: Path
                                                             ) -> None:
    home = tmp_path / "home"
    _phantom(StateStore(home))
    status = _cli(home, "status", "--json", lam=lam)
    assert status.returncode == 0, status.stderr
    (report,) = json.loads(status.stdout)["deployments"]
    assert "nothing was launched" in report["error"]
    assert "fluxdeploy down --name lambda-a10" in report["error"]

    doctor = _cli(home, "doctor", lam=lam)
    assert doctor.returncode == 2, doctor.stdout + doctor.stderr
    assert "nothing running" in doctor.stderr and "down --name lambda-a10" in doctor.stderr
    assert lam.requests == []


@pytest.mark.parametrize("argv", [["logs"], ["logs", "-f"], ["tunnel"], ["generate", "a fox"]])
def test_cli_commands_on_a_phantom_say_what_to_do(tmp_path: Path, argv: list[str]) -> None:
    home = tmp_path / "home"
    _phantom(StateStore(home))
    result = _cli(home, *argv, "--name", "lambda-a10")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "has nothing running" in result.stderr
    assert "fluxdeploy down --name lambda-a10" in result.stderr
    assert "Traceback" not in result.stderr
    assert (home / "deployments" / "lambda-a10.json").exists()  # only `down` forgets it


def test_cli_down_twice_forgets_the_record_the_second_time(tmp_path: Path) -> None:
    home = tmp_path / "home"
    StateStore(home).save(Deployment(name="old", preset="local", provider="local",
                                     phase="down"))
    result = _cli(home, "down", "--name", "old")
    assert result.returncode == 0, result.stderr
    assert "already down" in result.stdout
    assert not (home / "deployments" / "old.json").exists()


def test_local_up_without_docker_records_nothing(store: StateStore, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"  # a PATH with a shell and no docker
    bin_dir.mkdir()
    (bin_dir / "sh").symlink_to("/bin/sh")
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(FluxdeployError, match="Docker is not installed"):
        dispatch.up(load_preset("local"), name="here", store=store, ui=Recorder())
    assert store.list() == []


def test_status_names_an_unreadable_record(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "deployments").mkdir(parents=True)
    (home / "deployments" / "broken.json").write_text("{not json")
    result = _cli(home, "status")
    assert result.returncode == 1
    assert "broken.json" in result.stderr and "not readable" in result.stderr
