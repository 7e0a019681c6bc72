"""The bill, seen before and after (issue 16, points 1-3), against the fake Lambda API (a real
HTTP server that checks every request and answer against Lambda's OpenAPI file).

`up` shows the price before anything bills and, on a terminal, asks; it tags each instance
with its deployment and records the launch time and price; `status` shows uptime and spend;
`fluxdeploy instances` finds every instance of the account, recorded here or not, and
`down --instance` ends one that no record holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from intelligensi_deploy.cloud.lambda_api import LambdaClient
from intelligensi_deploy.deploy.cluster_launch import launch_nodes
from intelligensi_deploy.deploy.launch import LaunchDeclined, provision_lambda
from intelligensi_deploy.inventory import FOREIGN, RECORDED, UNRECORDED, classify
from intelligensi_deploy.presets import Preset, load_preset, parse_preset
from intelligensi_deploy.state import Deployment, StateStore, Tracker
from intelligensi_deploy.state_records import read_records
from tests.fakes.fake_lambda import FakeLambda

KEY = "secret_spend-test-key_0123456789abcdef"
ROOT = Path(__file__).resolve().parents[1]


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, message: str) -> None:
        self.lines.append(message)

    detail = warn = progress_line = step

    def ready_status(self, status: object, elapsed: float) -> None:
        pass


class Asked:
    """An `approve` that answers as told and counts the questions."""

    def __init__(self, answer: bool) -> None:
        self.answer, self.questions = answer, []

    def __call__(self, question: str) -> bool:
        self.questions.append(question)
        return self.answer


@pytest.fixture
def lam() -> Iterator[FakeLambda]:
    with FakeLambda(api_key=KEY, capacity={"gpu_1x_a10": ["us-east-1"],
                                           "gpu_1x_a100": ["us-east-1"]},
                    launch_interval_s=0.0) as fake:
        yield fake
        assert fake.violations == []


@pytest.fixture
def client(lam: FakeLambda) -> LambdaClient:
    """A client that does not wait out Lambda's 12 s between launches (the fake allows it)."""
    return LambdaClient(KEY, lam.url, sleep=lambda seconds: None)


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def _a10(key: Path) -> Preset:
    return parse_preset(f"name: gpu\nprovider: lambda\nlambda: {{instance_type: gpu_1x_a10, "
                        f"regions: [us-east-1], ssh_key_name: k}}\nssh: {{key_path: {key}}}\n"
                        "image: ghcr.io/x/y:1\n")


def _new(store: StateStore, name: str = "gpu") -> Tracker:
    return Tracker(store, Deployment(name=name, preset="gpu", provider="lambda",
                                     instance_type="gpu_1x_a10"), recorded=False)


def test_the_price_comes_before_the_launch_and_the_launch_is_tagged_and_recorded(
        lam: FakeLambda, client: LambdaClient, key_path: Path, tmp_path: Path) -> None:
    ui, asked, store = Recorder(), Asked(True), StateStore(tmp_path)
    before = time.time()
    provision_lambda(_a10(key_path), _new(store), ui, client, 60, asked)
    price = [i for i, line in enumerate(ui.lines) if "gpu_1x_a10 at $0.75/h" in line]
    launched = [i for i, line in enumerate(ui.lines) if line.startswith("launched ")]
    assert price and launched and price[0] < launched[0]
    assert asked.questions == ["Launch and start billing?"]
    body = lam.calls("POST", "/instance-operations/launch")[0].body
    assert body["tags"] == [{"key": "fluxdeploy-deployment", "value": "gpu"}]
    dep = store.load("gpu")
    assert dep is not None and dep.price_cents_per_hour == 75
    assert dep.launched_at is not None and before <= dep.launched_at <= time.time()


def test_a_no_at_the_price_launches_nothing_and_records_nothing(
        lam: FakeLambda, client: LambdaClient, key_path: Path, tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    with pytest.raises(LaunchDeclined) as info:
        provision_lambda(_a10(key_path), _new(store), Recorder(), client, 60, Asked(False))
    assert "--yes" in (info.value.fix or "")
    assert lam.calls("POST", "/instance-operations/launch") == []
    assert store.list() == []


def test_a_resumed_up_that_launches_nothing_asks_nothing(
        lam: FakeLambda, client: LambdaClient, key_path: Path, tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    provision_lambda(_a10(key_path), _new(store), Recorder(), client, 60, None)
    again, ui = Asked(True), Recorder()
    provision_lambda(_a10(key_path), Tracker(store, store.load("gpu")), ui, client, 60, again)
    assert again.questions == [] and not any("$" in line for line in ui.lines)
    assert len(lam.calls("POST", "/instance-operations/launch")) == 1


def test_a_cluster_shows_the_total_and_tags_each_node(
        lam: FakeLambda, client: LambdaClient, key_path: Path, tmp_path: Path) -> None:
    shipped = load_preset(str(ROOT / "presets" / "lambda-3x-a100.yaml"))
    preset = shipped.model_copy(update={
        "ssh": shipped.ssh.model_copy(update={"key_path": str(key_path)})})
    store, ui, asked = StateStore(tmp_path), Recorder(), Asked(True)
    tracker = Tracker(store, Deployment(name="trio", preset="lambda-3x-a100",
                                        provider="lambda"), recorded=False)
    launch_nodes(preset, tracker, ui, client, 60, asked)
    assert any("3 x gpu_1x_a100 at $1.29/h each = $3.87/h" in line for line in ui.lines)
    assert len(asked.questions) == 1
    tags = [{t["key"]: t["value"] for t in call.body["tags"]}
            for call in lam.calls("POST", "/instance-operations/launch")]
    assert tags == [{"fluxdeploy-deployment": "trio", "fluxdeploy-node": str(i)}
                    for i in (1, 2, 3)]
    record = store.load("trio")
    assert record is not None and record.price_cents_per_hour == 129
    assert all(node.launched_at for node in record.nodes)
    assert record.launched_at == record.node(1).launched_at


# ---------------------------------------------------------------- every instance of the account


def _three_instances(lam: FakeLambda, client: LambdaClient, key_path: Path,
                     home: Path) -> dict[str, str]:
    """One recorded here, one launched by fluxdeploy elsewhere, one launched by hand."""
    store = StateStore(home)
    provision_lambda(_a10(key_path), _new(store, "mine"), Recorder(), client, 60, None)
    elsewhere = client.launch("us-east-1", "gpu_1x_a100", "k", name="fluxdeploy-theirs",
                              tags={"fluxdeploy-deployment": "theirs"})[0]
    by_hand = client.launch("us-east-1", "gpu_1x_a10", "k", name="notebook")[0]
    mine = store.load("mine")
    assert mine is not None and mine.instance_id
    return {"mine": mine.instance_id, "theirs": elsewhere, "hand": by_hand}


def test_every_instance_is_classified(lam: FakeLambda, client: LambdaClient, key_path: Path,
                                      tmp_path: Path) -> None:
    ids = _three_instances(lam, client, key_path, tmp_path)
    rows = {r.id: r for r in classify(client.list_instances(),
                                      read_records(tmp_path / "deployments"), time.time())}
    assert rows[ids["mine"]].verdict == RECORDED and rows[ids["mine"]].deployment == "mine"
    assert rows[ids["mine"]].spend.uptime_s is not None  # the record knows its launch
    assert rows[ids["theirs"]].verdict == UNRECORDED and rows[ids["theirs"]].tagged == "theirs"
    assert rows[ids["theirs"]].spend.price_per_hour == pytest.approx(1.29)
    assert rows[ids["theirs"]].spend.uptime_s is None  # Lambda does not say when
    assert rows[ids["hand"]].verdict == FOREIGN
    client.terminate([ids["hand"]])
    assert ids["hand"] not in {r.id for r in classify(client.list_instances(), [], 0.0)}


def _cli(*args: str, lam: FakeLambda, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LAMBDA_API_URL": lam.url, "LAMBDA_API_KEY": KEY,
           "FLUXDEPLOY_HOME": str(home), "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "intelligensi_deploy", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL)


def test_instances_status_and_down_instance_from_the_command_line(
        lam: FakeLambda, client: LambdaClient, key_path: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    ids = _three_instances(lam, client, key_path, home)

    listed = _cli("instances", "--json", lam=lam, home=home)
    assert listed.returncode == 0, listed.stderr
    verdicts = {r["id"]: r["verdict"] for r in json.loads(listed.stdout)["instances"]}
    assert verdicts == {ids["mine"]: RECORDED, ids["theirs"]: UNRECORDED, ids["hand"]: FOREIGN}
    table = _cli("instances", lam=lam, home=home)
    assert "have no record here" in table.stdout and "down --instance" in table.stdout

    status = json.loads(_cli("status", "--json", "--name", "mine", lam=lam, home=home).stdout)
    cost = status["deployments"][0]["cost"]
    assert cost["price_per_hour"] == 0.75 and cost["uptime_s"] >= 0 and cost["spend"] >= 0

    refused = _cli("down", "--instance", ids["mine"], lam=lam, home=home)
    assert refused.returncode == 1 and "down --name mine" in refused.stderr
    ended = _cli("down", "--instance", ids["theirs"], lam=lam, home=home)  # no terminal
    assert ended.returncode == 0, ended.stderr
    assert f"Terminated instance {ids['theirs']}" in ended.stdout
    assert lam.instances[ids["theirs"]].forced_status == "terminated"
    unknown = _cli("down", "--instance", "nope", lam=lam, home=home)
    assert unknown.returncode == 1 and "fluxdeploy instances" in unknown.stderr
    assert KEY not in listed.stdout + table.stdout + ended.stdout + ended.stderr


def test_doctor_warns_of_instances_fluxdeploy_launched_that_no_record_knows(
        lam: FakeLambda, client: LambdaClient, key_path: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    ids = _three_instances(lam, client, key_path, home)
    result = _cli("doctor", "--json", "--name", "mine", lam=lam, home=home)
    checks = {c["id"]: c for c in json.loads(result.stdout)["checks"]}
    forgotten = checks["forgotten"]
    assert forgotten["status"] == "warn" and "down --instance" in forgotten["fix"]
    assert any(ids["theirs"] in line and "'theirs'" in line for line in forgotten["evidence"])
    assert not any(ids["hand"] in line for line in forgotten["evidence"])  # not fluxdeploy's
    client.terminate([ids["theirs"]])
    again = json.loads(_cli("doctor", "--json", "--name", "mine", lam=lam, home=home).stdout)
    assert {c["id"]: c for c in again["checks"]}["forgotten"]["status"] == "pass"
