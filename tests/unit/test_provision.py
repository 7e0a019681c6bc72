"""Provisioning: region choice, launch with fallback, boot wait and firewall merge."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from intelligensi_deploy.cloud.lambda_api import LambdaClient
from intelligensi_deploy.cloud.lambda_errors import LambdaUnavailable
from intelligensi_deploy.cloud.lambda_types import FirewallRule, InstanceSpecs, InstanceType
from intelligensi_deploy.cloud.provision import (
    BootTimeout,
    InstanceFailed,
    NoCapacity,
    UnknownInstanceType,
    capacity_rows,
    choose_regions,
    ensure_firewall_rule,
    ensure_ssh_key,
    firewall_applies,
    launch_first_available,
    normalize_cidr,
    remove_firewall_rule,
    rule_covers,
    terminate_if_present,
    wait_for_active,
)
from intelligensi_deploy.errors import FluxdeployError
from tests.fakes.fake_lambda import FakeLambda, ManualClock

KEY = "secret_provision_test_key"


def itype(name: str, cents: int, regions: tuple[str, ...], gpus: int = 1) -> InstanceType:
    return InstanceType(name, f"{gpus}x {name}", f"GPU of {name}", cents,
                        InstanceSpecs(8, 64, 512, gpus), regions)


TYPES = [itype("gpu_1x_a10", 75, ("us-west-1", "us-east-1")),
         itype("gpu_1x_h100_pcie", 249, ()),
         itype("gpu_1x_a100", 129, ("us-west-2",)),
         itype("gpu_8x_a100", 1032, ("us-east-1",), gpus=8)]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock: ManualClock) -> Iterator[FakeLambda]:
    with FakeLambda(api_key=KEY, clock=clock,
                    capacity={"gpu_1x_a10": ["us-east-1", "us-west-1"],
                              "gpu_1x_a100": ["us-west-2", "us-east-2"]}) as server:
        server.add_ssh_key("laptop")
        yield server
        assert server.violations == []


@pytest.fixture
def client(fake: FakeLambda, clock: ManualClock) -> Iterator[LambdaClient]:
    with LambdaClient(KEY, fake.url, sleep=clock.sleep, clock=clock,
                      rng=random.Random(3)) as lambda_client:
        yield lambda_client


# --------------------------------------------------------------------------- pure


def test_choose_regions_keeps_preset_order_and_drops_full_regions() -> None:
    assert choose_regions(TYPES, "gpu_1x_a10", ["us-east-1", "europe-central-1", "us-west-1"]
                          ) == ["us-east-1", "us-west-1"]
    assert choose_regions(TYPES, "gpu_1x_a10", ["us-west-1", "us-east-1"]
                          ) == ["us-west-1", "us-east-1"]
    assert choose_regions(TYPES, "gpu_1x_h100_pcie", ["us-west-1"]) == []


def test_choose_regions_without_preference_takes_any_with_capacity() -> None:
    assert choose_regions(TYPES, "gpu_1x_a10", []) == ["us-west-1", "us-east-1"]


def test_choose_regions_unknown_type_lists_valid_ones() -> None:
    with pytest.raises(UnknownInstanceType) as caught:
        choose_regions(TYPES, "gpu_1x_a11", ["us-west-1"])
    text = str(caught.value)
    assert "gpu_1x_a11" in text
    for t in TYPES:
        assert t.name in text


def test_capacity_rows_available_first_then_cheapest() -> None:
    rows = capacity_rows(TYPES)
    assert [r.name for r in rows] == [
        "gpu_1x_a10", "gpu_1x_a100", "gpu_8x_a100", "gpu_1x_h100_pcie"]
    assert rows[0].price_per_hour == 0.75
    assert rows[0].regions == ("us-east-1", "us-west-1")
    assert rows[0].to_dict() == {"name": "gpu_1x_a10", "gpu": "GPU of gpu_1x_a10",
                                 "gpus": 1, "price_per_hour": 0.75,
                                 "regions": ["us-east-1", "us-west-1"]}


def test_normalize_cidr() -> None:
    assert normalize_cidr("203.0.113.7") == "203.0.113.7/32"
    assert normalize_cidr("203.0.113.7/24") == "203.0.113.0/24"
    with pytest.raises(FluxdeployError, match="CIDR"):
        normalize_cidr("my-laptop")


def test_rule_covers() -> None:
    anyone_web = FirewallRule("tcp", (8000, 8100), "0.0.0.0/0", "")
    assert rule_covers(anyone_web, 8000, "203.0.113.7/32")
    assert not rule_covers(anyone_web, 9000, "203.0.113.7/32")
    assert not rule_covers(FirewallRule("udp", (8000, 8000), "0.0.0.0/0", ""), 8000,
                           "1.2.3.4/32")
    assert not rule_covers(FirewallRule("tcp", (8000, 8000), "1.2.3.4/32", ""), 8000,
                           "0.0.0.0/0")
    assert rule_covers(FirewallRule("all", None, "1.2.3.0/24", ""), 8000, "1.2.3.4/32")
    assert not rule_covers(FirewallRule("icmp", None, "0.0.0.0/0", ""), 8000, "1.2.3.4/32")


def test_firewall_does_not_apply_in_us_south_1() -> None:
    assert not firewall_applies("us-south-1")
    assert firewall_applies("us-west-1")


# --------------------------------------------------------------------------- launch


def test_capacity_refused_in_first_region_launches_in_second(
        client: LambdaClient, fake: FakeLambda) -> None:
    fake.refuse_launch_in("us-east-1")
    reported: list[tuple[str, str]] = []
    launched = launch_first_available(client, "gpu_1x_a10", ["us-east-1", "us-west-1"],
                                      "laptop", name="flux-a10",
                                      on_launched=lambda i, r: reported.append((i, r)))
    assert launched.region == "us-west-1"
    assert reported == [(launched.instance_id, "us-west-1")]
    assert fake.instances[launched.instance_id].region == "us-west-1"
    bodies = [r.body["region_name"] for r in fake.calls("POST", "/instance-operations/launch")]
    assert bodies == ["us-east-1", "us-west-1"]
    assert all(r.status != 429 for r in fake.requests)  # the second launch was spaced


def test_regions_without_listed_capacity_are_not_even_tried(
        client: LambdaClient, fake: FakeLambda) -> None:
    launched = launch_first_available(client, "gpu_1x_a10", ["europe-central-1", "us-west-1"],
                                      "laptop", name="x", on_launched=lambda i, r: None)
    assert launched.region == "us-west-1"
    assert len(fake.calls("POST", "/instance-operations/launch")) == 1


def test_on_launched_runs_before_any_wait(client: LambdaClient, fake: FakeLambda) -> None:
    seen: list[tuple[str, int]] = []

    def on_launched(instance_id: str, region: str) -> None:
        seen.append((instance_id, len(fake.calls("GET", f"/instances/{instance_id}"))))

    launched = launch_first_available(client, "gpu_1x_a10", ["us-east-1"], "laptop",
                                      name="x", on_launched=on_launched)
    assert seen == [(launched.instance_id, 0)]
    assert fake.requests[-1].path.endswith("/instance-operations/launch")


def test_failing_on_launched_still_names_the_billing_instance(client: LambdaClient,
                                                              fake: FakeLambda) -> None:
    def on_launched(instance_id: str, region: str) -> None:
        raise OSError("disk full")

    with pytest.raises(FluxdeployError) as caught:
        launch_first_available(client, "gpu_1x_a10", ["us-east-1"], "laptop", name="x",
                               on_launched=on_launched)
    [instance_id] = fake.instances
    assert instance_id in str(caught.value) and "billing" in str(caught.value)
    assert "disk full" in str(caught.value)


def test_no_capacity_anywhere_names_alternatives(client: LambdaClient,
                                                 fake: FakeLambda) -> None:
    with pytest.raises(NoCapacity) as caught:
        launch_first_available(client, "gpu_1x_h100_pcie", ["us-east-1", "us-west-1"],
                               "laptop", name="x", on_launched=lambda i, r: None)
    text = str(caught.value)
    assert "gpu_1x_h100_pcie" in text and "us-east-1, us-west-1" in text
    assert "gpu_1x_a10 ($0.75/h) in us-east-1, us-west-1" in text
    assert "gpu_1x_a100 ($1.29/h) in us-east-2, us-west-2" in text
    assert fake.calls("POST", "/instance-operations/launch") == []


def test_all_listed_regions_refusing_is_no_capacity(client: LambdaClient,
                                                    fake: FakeLambda) -> None:
    fake.refuse_launch_in("us-east-1", "us-west-1")
    launched: list[str] = []
    with pytest.raises(NoCapacity, match="launch refused for lack of capacity in "
                                         "us-east-1, us-west-1"):
        launch_first_available(client, "gpu_1x_a10", ["us-east-1", "us-west-1"], "laptop",
                               name="x", on_launched=lambda i, r: launched.append(i))
    assert launched == [] and fake.instances == {}


def test_lost_launch_reply_is_recovered_by_name(client: LambdaClient, fake: FakeLambda) -> None:
    fake.fail_next("/instance-operations/launch", 1, status=500, after_processing=True)
    reported: list[str] = []
    launched = launch_first_available(client, "gpu_1x_a10", ["us-east-1"], "laptop",
                                      name="flux-lost", on_launched=lambda i, r: reported.append(i))
    assert list(fake.instances) == [launched.instance_id] == reported


def test_failed_launch_without_instance_is_raised(client: LambdaClient,
                                                  fake: FakeLambda) -> None:
    fake.fail_next("/instance-operations/launch", 1, status=500)
    with pytest.raises(LambdaUnavailable):
        launch_first_available(client, "gpu_1x_a10", ["us-east-1"], "laptop", name="x",
                               on_launched=lambda i, r: None)
    assert fake.instances == {}


def test_unknown_instance_type_is_reported_before_launch(client: LambdaClient,
                                                         fake: FakeLambda) -> None:
    with pytest.raises(UnknownInstanceType):
        launch_first_available(client, "gpu_9x_imaginary", ["us-east-1"], "laptop",
                               name="x", on_launched=lambda i, r: None)
    assert fake.calls("POST", "/instance-operations/launch") == []


def test_existing_file_system_pins_the_region(client: LambdaClient, fake: FakeLambda) -> None:
    client.create_file_system("hf-cache", "us-west-1")
    launched = launch_first_available(client, "gpu_1x_a10", ["us-east-1", "us-west-1"],
                                      "laptop", name="x", file_system="hf-cache",
                                      on_launched=lambda i, r: None)
    assert launched.region == "us-west-1"
    assert fake.instances[launched.instance_id].file_system_names == ["hf-cache"]


def test_file_system_in_a_full_region_is_no_capacity(client: LambdaClient,
                                                     fake: FakeLambda) -> None:
    client.create_file_system("hf-cache", "europe-central-1")
    with pytest.raises(NoCapacity, match="pins the launch to europe-central-1"):
        launch_first_available(client, "gpu_1x_a10", ["us-east-1", "us-west-1"], "laptop",
                               name="x", file_system="hf-cache", on_launched=lambda i, r: None)


def test_missing_file_system_is_created_in_the_launch_region(client: LambdaClient) -> None:
    launched = launch_first_available(client, "gpu_1x_a10", ["us-west-1", "us-east-1"],
                                      "laptop", name="x", file_system="hf-cache",
                                      on_launched=lambda i, r: None)
    [fs] = client.file_systems()
    assert (fs.name, fs.region) == ("hf-cache", launched.region) == ("hf-cache", "us-west-1")


# --------------------------------------------------------------------------- boot wait


def _launch(client: LambdaClient) -> str:
    return client.launch("us-east-1", "gpu_1x_a10", "laptop", name="boot")[0]


def test_wait_for_active_returns_the_ip(client: LambdaClient, fake: FakeLambda,
                                        clock: ManualClock) -> None:
    fake.boot_seconds, fake.instance_ip = 30, "127.0.0.2"
    instance_id = _launch(client)
    statuses: list[tuple[str, str | None]] = []
    instance = wait_for_active(client, instance_id, 600,
                               lambda i: statuses.append((i.status, i.ip)),
                               sleep=clock.sleep, clock=clock)
    assert (instance.status, instance.ip) == ("active", "127.0.0.2")
    assert statuses[0] == ("booting", None) and statuses[-1] == ("active", "127.0.0.2")
    assert len(statuses) == 1 + 30 // 5  # polled every 5 s


def test_unhealthy_instance_is_a_clear_error_and_still_billing(
        client: LambdaClient, fake: FakeLambda, clock: ManualClock) -> None:
    fake.boot_seconds = 100
    instance_id = _launch(client)
    polls: list[str] = []

    def on_status(instance: object) -> None:
        polls.append(instance.status)  # type: ignore[attr-defined]
        if len(polls) == 2:
            fake.set_status(instance_id, "unhealthy")

    with pytest.raises(InstanceFailed) as caught:
        wait_for_active(client, instance_id, 600, on_status, sleep=clock.sleep, clock=clock)
    text = str(caught.value)
    assert instance_id in text and "unhealthy" in text and "still billing" in text
    assert "fluxdeploy down" in text
    assert polls == ["booting", "booting", "unhealthy"]


@pytest.mark.parametrize("status", ["preempted", "terminated"])
def test_gone_instance_is_not_billing(client: LambdaClient, fake: FakeLambda,
                                      clock: ManualClock, status: str) -> None:
    fake.boot_seconds = 100
    instance_id = _launch(client)
    fake.set_status(instance_id, status)
    with pytest.raises(InstanceFailed, match="not billing"):
        wait_for_active(client, instance_id, 600, sleep=clock.sleep, clock=clock)


def test_boot_timeout_says_it_is_still_billing(client: LambdaClient, fake: FakeLambda,
                                               clock: ManualClock) -> None:
    fake.boot_seconds = 10_000
    instance_id = _launch(client)
    start = clock.now
    with pytest.raises(BootTimeout) as caught:
        wait_for_active(client, instance_id, 60, sleep=clock.sleep, clock=clock)
    assert instance_id in str(caught.value) and "still billing" in str(caught.value)
    assert 60 <= clock.now - start < 66


def test_vanished_instance_is_not_billing(client: LambdaClient, clock: ManualClock) -> None:
    with pytest.raises(InstanceFailed, match="no longer exists.*not billing"):
        wait_for_active(client, "0000feed", 60, sleep=clock.sleep, clock=clock)


def test_terminate_if_present_is_repeatable(client: LambdaClient, fake: FakeLambda) -> None:
    instance_id = _launch(client)
    assert terminate_if_present(client, instance_id) is True
    assert fake.instances[instance_id].forced_status == "terminated"
    assert terminate_if_present(client, instance_id) is False
    assert terminate_if_present(client, "0000feed") is False
    assert len(fake.calls("POST", "/instance-operations/terminate")) == 1


# --------------------------------------------------------------------------- SSH key


PUBLIC = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFluxTest me@laptop"


def test_ensure_ssh_key_uploads_once(client: LambdaClient, fake: FakeLambda) -> None:
    first = ensure_ssh_key(client, "flux", PUBLIC)
    second = ensure_ssh_key(client, "flux", PUBLIC.replace("me@laptop", "other comment"))
    assert first.id == second.id
    assert len(fake.calls("POST", "/ssh-keys")) == 1
    assert sorted(k["name"] for k in fake.ssh_keys.values()) == ["flux", "laptop"]


def test_ensure_ssh_key_refuses_a_different_key_of_the_same_name(client: LambdaClient,
                                                                  fake: FakeLambda) -> None:
    with pytest.raises(FluxdeployError, match="different public key"):
        ensure_ssh_key(client, "laptop", PUBLIC)
    assert fake.calls("POST", "/ssh-keys") == []


# --------------------------------------------------------------------------- firewall


FOREIGN: list[dict[str, Any]] = [
    {"protocol": "tcp", "port_range": [22, 22], "source_network": "0.0.0.0/0",
     "description": "Allow SSH from anywhere"},
    {"protocol": "icmp", "source_network": "0.0.0.0/0", "description": "ping"},
    {"protocol": "udp", "port_range": [51820, 51820], "source_network": "198.51.100.0/24",
     "description": "someone's wireguard"},
]


def test_ensure_rule_keeps_foreign_rules(client: LambdaClient, fake: FakeLambda) -> None:
    fake.firewall_rules = [dict(r) for r in FOREIGN]
    rule = ensure_firewall_rule(client, 8000, "203.0.113.7", "fluxdeploy flux-a10")
    assert rule == FirewallRule("tcp", (8000, 8000), "203.0.113.7/32", "fluxdeploy flux-a10")
    assert fake.firewall_rules[:3] == FOREIGN
    assert fake.firewall_rules[3] == {"protocol": "tcp", "port_range": [8000, 8000],
                                      "source_network": "203.0.113.7/32",
                                      "description": "fluxdeploy flux-a10"}


def test_ensure_rule_is_idempotent(client: LambdaClient, fake: FakeLambda) -> None:
    first = ensure_firewall_rule(client, 8000, "0.0.0.0/0", "fluxdeploy a")
    second = ensure_firewall_rule(client, 8000, "0.0.0.0/0", "fluxdeploy a")
    assert first == second is not None
    assert len(fake.calls("PUT", "/firewall-rules")) == 1
    assert len(fake.firewall_rules) == 3


def test_rule_already_covered_by_a_foreign_rule_is_not_added(client: LambdaClient,
                                                             fake: FakeLambda) -> None:
    fake.firewall_rules = [{"protocol": "tcp", "port_range": [1, 65535],
                            "source_network": "0.0.0.0/0", "description": "wide open"}]
    assert ensure_firewall_rule(client, 8000, "203.0.113.7/32", "fluxdeploy a") is None
    assert fake.calls("PUT", "/firewall-rules") == []


def test_remove_rule_removes_exactly_ours(client: LambdaClient, fake: FakeLambda) -> None:
    fake.firewall_rules = [dict(r) for r in FOREIGN]
    ours = ensure_firewall_rule(client, 8000, "203.0.113.7", "fluxdeploy a")
    other = ensure_firewall_rule(client, 8001, "203.0.113.7", "fluxdeploy b")
    assert ours is not None and other is not None
    assert remove_firewall_rule(client, ours) is True
    assert fake.firewall_rules == [*FOREIGN, other.to_api()]
    assert remove_firewall_rule(client, ours) is False
    assert remove_firewall_rule(client, other.to_api()) is True  # the form kept in state
    assert fake.firewall_rules == FOREIGN
    assert len(fake.calls("PUT", "/firewall-rules")) == 4  # two adds, two removals


def test_importing_provision_does_not_import_httpx() -> None:
    import subprocess
    import sys

    code = ("import sys, intelligensi_deploy.cloud.provision; "
            "print('httpx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
