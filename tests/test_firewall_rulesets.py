"""Firewall rules per deployment, not per account (issue 17, point 4), against the fake Lambda
API (a real HTTP server that checks every request and answer against Lambda's OpenAPI file).

`up` creates the deployment's own ruleset in the launch region and attaches it at launch
(never `PUT /firewall-rules`); a cluster's ruleset gets the nodes' /32s by PATCH once they
are active; `down` deletes it after the instances are gone and touches neither another
deployment's ruleset nor the account's legacy rules, except those an earlier fluxdeploy
recorded for this deployment.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from intelligensi_deploy.cloud.lambda_api import LambdaClient
from intelligensi_deploy.cloud.rulesets import RulesetStillInUse, delete_ruleset
from intelligensi_deploy.deploy.cluster_down import down_cluster
from intelligensi_deploy.deploy.cluster_launch import launch_nodes, open_cluster_ports
from intelligensi_deploy.deploy.launch import provision_lambda
from intelligensi_deploy.deploy.single import down_single
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.presets import Preset, load_preset, parse_preset
from intelligensi_deploy.state import Deployment, StateStore, Tracker
from tests.fakes.fake_lambda import FakeLambda

KEY = "secret_rulesets-test-key_0123456789abcdef"
ROOT = Path(__file__).resolve().parents[1]
NODE_IPS = ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
OTHERS_RULE = {"protocol": "tcp", "port_range": [443, 443], "source_network": "0.0.0.0/0",
               "description": "someone else's rule"}
OLD_RULE = {"protocol": "tcp", "port_range": [8000, 8000], "source_network": "203.0.113.7/32",
            "description": "fluxdeploy gpu"}


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, message: str) -> None:
        self.lines.append(message)

    detail = warn = progress_line = step

    def ready_status(self, status: object, elapsed: float) -> None:
        pass


@pytest.fixture
def lam() -> Iterator[FakeLambda]:
    with FakeLambda(api_key=KEY, capacity={"gpu_1x_a10": ["us-west-1", "us-east-1"],
                                           "gpu_1x_a100": ["us-east-1"]},
                    launch_interval_s=0.0, instance_ip=NODE_IPS) as fake:
        fake.firewall_rules.append(dict(OTHERS_RULE))
        yield fake
        assert fake.violations == []


@pytest.fixture
def client(lam: FakeLambda) -> LambdaClient:
    return LambdaClient(KEY, lam.url, sleep=lambda seconds: None)


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def _a10(key: Path, exposure: str = "public", regions: str = "us-east-1") -> Preset:
    return parse_preset(f"name: gpu\nprovider: lambda\nlambda: {{instance_type: gpu_1x_a10, "
                        f"regions: [{regions}], ssh_key_name: k}}\nssh: {{key_path: {key}}}\n"
                        f"image: ghcr.io/x/y:1\nexposure: {exposure}\n"
                        "public_cidr: 203.0.113.7/32\n")


def _tracker(store: StateStore, name: str = "gpu") -> Tracker:
    return Tracker(store, Deployment(name=name, preset="gpu", provider="lambda",
                                     instance_type="gpu_1x_a10"), recorded=False)


def _rules(lam: FakeLambda, ruleset_id: str) -> list[tuple[object, ...]]:
    return [(r.get("port_range"), r["source_network"])
            for r in lam.rulesets.rulesets[ruleset_id]["rules"]]


def test_up_creates_the_deployments_ruleset_and_attaches_it_at_launch(
        lam: FakeLambda, client: LambdaClient, key_path: Path, tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    provision_lambda(_a10(key_path), _tracker(store), Recorder(), client, 60)
    dep = store.load("gpu")
    assert dep is not None and dep.firewall_ruleset_id and dep.firewall_rule is None
    ruleset = lam.rulesets.rulesets[dep.firewall_ruleset_id]
    assert (ruleset["name"], ruleset["region"]["name"]) == ("fluxdeploy-gpu", "us-east-1")
    assert _rules(lam, dep.firewall_ruleset_id) == [([22, 22], "0.0.0.0/0"),
                                                    ([8000, 8000], "203.0.113.7/32")]
    launch = lam.calls("POST", "/instance-operations/launch")[0].body
    assert launch["firewall_rulesets"] == [{"id": dep.firewall_ruleset_id}]
    assert lam.instances[dep.instance_id or ""].firewall_rulesets == [dep.firewall_ruleset_id]
    assert lam.calls("PUT", "/firewall-rules") == []  # the account's rules: never written
    assert lam.firewall_rules[-1] == OTHERS_RULE


def test_a_tunnel_deployment_opens_ssh_only_and_a_resumed_public_one_patches(
        lam: FakeLambda, client: LambdaClient, key_path: Path, tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    provision_lambda(_a10(key_path, "tunnel"), _tracker(store), Recorder(), client, 60)
    dep = store.load("gpu")
    assert dep is not None and dep.firewall_ruleset_id
    assert _rules(lam, dep.firewall_ruleset_id) == [([22, 22], "0.0.0.0/0")]
    provision_lambda(_a10(key_path), Tracker(store, dep), Recorder(), client, 60)
    assert len(lam.calls("PATCH", f"/firewall-rulesets/{dep.firewall_ruleset_id}")) == 1
    assert ([8000, 8000], "203.0.113.7/32") in _rules(lam, dep.firewall_ruleset_id)
    assert len(lam.calls("POST", "/instance-operations/launch")) == 1


def test_a_region_that_refuses_the_launch_keeps_no_ruleset_there(
        lam: FakeLambda, client: LambdaClient, key_path: Path, tmp_path: Path) -> None:
    lam.refuse_launch_in("us-west-1")
    store = StateStore(tmp_path)
    provision_lambda(_a10(key_path, regions="us-west-1, us-east-1"), _tracker(store),
                     Recorder(), client, 60)
    dep = store.load("gpu")
    assert dep is not None and dep.region == "us-east-1"
    assert [r["region"]["name"] for r in lam.rulesets.rulesets.values()] == ["us-east-1"]
    assert list(lam.rulesets.rulesets) == [dep.firewall_ruleset_id]


def test_a_launch_that_launches_nothing_deletes_its_ruleset_and_records_nothing(
        lam: FakeLambda, client: LambdaClient, key_path: Path, tmp_path: Path) -> None:
    lam.refuse_launch_in("us-east-1")
    store = StateStore(tmp_path)
    with pytest.raises(FluxdeployError, match="capacity"):
        provision_lambda(_a10(key_path), _tracker(store), Recorder(), client, 60)
    assert lam.rulesets.rulesets == {} and store.list() == []


def test_down_deletes_its_ruleset_only_and_leaves_the_accounts_rules(
        lam: FakeLambda, client: LambdaClient, key_path: Path, tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    provision_lambda(_a10(key_path), _tracker(store, "other"), Recorder(), client, 60)
    provision_lambda(_a10(key_path), _tracker(store), Recorder(), client, 60)
    mine, other = store.load("gpu"), store.load("other")
    assert mine is not None and other is not None
    rules_before = [dict(r) for r in lam.firewall_rules]
    done = down_single(mine.model_copy(update={"ip": None}), Tracker(store, mine), Recorder(),
                       client)
    assert done.phase == "down" and done.firewall_ruleset_id is None
    assert not done.holds_resources
    assert list(lam.rulesets.rulesets) == [other.firewall_ruleset_id]
    assert lam.firewall_rules == rules_before and lam.calls("PUT", "/firewall-rules") == []
    deleted = lam.calls("DELETE", f"/firewall-rulesets/{mine.firewall_ruleset_id}")
    terminated = lam.calls("POST", "/instance-operations/terminate")
    assert lam.requests.index(terminated[0]) < lam.requests.index(deleted[0])


def test_down_of_an_older_record_removes_its_legacy_rule(
        lam: FakeLambda, client: LambdaClient, tmp_path: Path) -> None:
    lam.firewall_rules.append(dict(OLD_RULE))
    store = StateStore(tmp_path)
    dep = store.save(Deployment(name="gpu", preset="gpu", provider="lambda", phase="ready",
                                region="us-east-1", firewall_rule=dict(OLD_RULE)))
    down_single(dep, Tracker(store, dep), Recorder(), client)
    assert lam.firewall_rules[-1] == OTHERS_RULE and OLD_RULE not in lam.firewall_rules


def test_a_ruleset_still_in_use_is_retried_then_kept_recorded(
        lam: FakeLambda, client: LambdaClient, key_path: Path, tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    provision_lambda(_a10(key_path, "tunnel"), _tracker(store), Recorder(), client, 60)
    dep = store.load("gpu")
    assert dep is not None and dep.firewall_ruleset_id
    lam.rulesets.in_use_refusals = 2  # the instance takes a while to be terminated
    ui = Recorder()
    done = down_single(dep.model_copy(update={"ip": None}), Tracker(store, dep), ui, client)
    assert done.firewall_ruleset_id is None and lam.rulesets.rulesets == {}
    assert sum("still attached" in line for line in ui.lines) == 2

    ruleset = client.create_firewall_ruleset("fluxdeploy-x", "us-east-1", [])
    lam.rulesets.in_use_refusals = 99
    with pytest.raises(RulesetStillInUse) as info:
        delete_ruleset(client, ruleset.id, attempts=3)
    assert "`fluxdeploy down` again" in (info.value.fix or "")
    again = store.save(Deployment(name="x", preset="x", provider="lambda", phase="ready",
                                  firewall_ruleset_id=ruleset.id))
    kept = down_single(again, Tracker(store, again), (ui := Recorder()), client)
    assert kept.firewall_ruleset_id == ruleset.id and kept.holds_resources
    assert any("still refuses" in line for line in ui.lines)


def _trio(key_path: Path) -> Preset:
    shipped = load_preset(str(ROOT / "presets" / "lambda-3x-a100.yaml"))
    return shipped.model_copy(update={
        "ssh": shipped.ssh.model_copy(update={"key_path": str(key_path)})})


def test_a_cluster_ruleset_gets_the_nodes_addresses_and_down_deletes_it(
        lam: FakeLambda, client: LambdaClient, key_path: Path, tmp_path: Path) -> None:
    store, ui, preset = StateStore(tmp_path), Recorder(), _trio(key_path)
    tracker = Tracker(store, Deployment(name="trio", preset="lambda-3x-a100",
                                        provider="lambda"), recorded=False)
    launch_nodes(preset, tracker, ui, client, 60)
    ruleset_id = tracker.dep.firewall_ruleset_id
    assert ruleset_id is not None
    launches = lam.calls("POST", "/instance-operations/launch")
    assert [c.body["firewall_rulesets"] for c in launches] == [[{"id": ruleset_id}]] * 3
    open_cluster_ports(preset, tracker, ui, client)
    assert len(lam.calls("PATCH", f"/firewall-rulesets/{ruleset_id}")) == 1
    ray = [r for r in _rules(lam, ruleset_id) if r[0] == [6379, 6499]]
    assert ray == [([6379, 6499], f"{ip}/32") for ip in NODE_IPS]
    assert tracker.dep.ray_rule_ips == [] and lam.calls("PUT", "/firewall-rules") == []
    open_cluster_ports(preset, tracker, ui, client)  # resumed: nothing to change
    assert len(lam.calls("PATCH", f"/firewall-rulesets/{ruleset_id}")) == 1

    dep = tracker.dep.model_copy(update={
        "nodes": [n.model_copy(update={"ip": None}) for n in tracker.dep.nodes], "ip": None})
    done = down_cluster(dep, store, Recorder(), client)
    assert done.phase == "down" and not done.holds_resources
    assert lam.rulesets.rulesets == {} and lam.firewall_rules[-1] == OTHERS_RULE
