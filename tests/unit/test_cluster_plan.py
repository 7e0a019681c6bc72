"""Launching a cluster's nodes in one region, capacity-aware, and never half-billed."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from intelligensi_deploy.cloud.cluster_plan import (
    ClusterCapacityError,
    RecordedNode,
    launch_cluster,
    node_names,
    plan_cluster_launch,
)
from intelligensi_deploy.cloud.lambda_api import LambdaClient
from intelligensi_deploy.cloud.lambda_types import InstanceSpecs, InstanceType
from tests.fakes.fake_lambda import FakeLambda, ManualClock

KEY = "secret_cluster_plan_key"
TYPE = "gpu_1x_a100"


def itype(regions: tuple[str, ...]) -> list[InstanceType]:
    return [InstanceType(TYPE, "1x A100", "A100", 129, InstanceSpecs(30, 200, 512, 1), regions)]


# --------------------------------------------------------------------------- pure


def test_plan_takes_the_first_preferred_region_with_capacity_for_every_node():
    plan = plan_cluster_launch(itype(("us-west-2", "us-east-1")), TYPE,
                               ["us-east-1", "us-west-2"], "demo", 3)
    assert plan.region == "us-east-1" and plan.fallback_regions == ("us-west-2",)
    assert plan.to_launch == plan.node_names == node_names("demo", 3)
    assert plan.node_names[0] == "fluxdeploy-demo-node1"  # the Ray head


def test_plan_skips_the_region_where_firewall_rules_do_not_apply():
    plan = plan_cluster_launch(itype(("us-south-1", "us-west-2")), TYPE, [], "demo", 3)
    assert plan.region == "us-west-2"
    with pytest.raises(ClusterCapacityError) as info:
        plan_cluster_launch(itype(("us-south-1",)), TYPE, ["us-south-1"], "demo", 3)
    assert "firewall rules do not apply" in str(info.value)
    assert "Nothing was launched" in str(info.value)
    # one node needs no Ray ports between machines: us-south-1 is fine
    assert plan_cluster_launch(itype(("us-south-1",)), TYPE, [], "demo", 1).region == \
        "us-south-1"


def test_plan_refuses_up_front_with_a_choice_when_no_region_has_capacity():
    with pytest.raises(ClusterCapacityError) as info:
        plan_cluster_launch(itype(("europe-central-1",)), TYPE, ["us-east-1"], "demo", 3)
    text = str(info.value)
    assert "No capacity for 3 x gpu_1x_a100 in us-east-1" in text
    assert "lower scale.nodes" in text and "europe-central-1" in text


def test_resumed_plan_launches_only_the_missing_nodes_in_the_recorded_region():
    recorded = [RecordedNode("fluxdeploy-demo-node1", "i-1", "us-west-2")]
    plan = plan_cluster_launch(itype(("us-east-1", "us-west-2")), TYPE, ["us-east-1"],
                               "demo", 3, recorded)
    assert plan.region == "us-west-2"
    assert plan.to_launch == ("fluxdeploy-demo-node2", "fluxdeploy-demo-node3")
    with pytest.raises(ClusterCapacityError, match="1 of 3 nodes of 'demo' run in us-west-2"):
        plan_cluster_launch(itype(("us-east-1",)), TYPE, [], "demo", 3, recorded)


# --------------------------------------------------------------------------- fake Lambda


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock: ManualClock) -> Iterator[FakeLambda]:
    with FakeLambda(api_key=KEY, clock=clock,
                    capacity={TYPE: ["us-east-1", "us-west-2"]}) as server:
        server.add_ssh_key("laptop")
        yield server
        assert server.violations == []  # every request and answer matched the OpenAPI file


@pytest.fixture
def client(fake: FakeLambda, clock: ManualClock) -> Iterator[LambdaClient]:
    with LambdaClient(KEY, fake.url, sleep=clock.sleep, clock=clock,
                      rng=random.Random(5)) as lambda_client:
        yield lambda_client


def billing(fake: FakeLambda) -> list[str]:
    return [i.id for i in fake.instances.values()
            if fake._status(i) not in ("terminated", "terminating")]


def test_three_nodes_launch_in_one_region_each_recorded_at_once(fake, client):
    recorded: list[RecordedNode] = []
    plan = plan_cluster_launch(client.instance_types(), TYPE, ["us-west-2"], "demo", 3)
    nodes = launch_cluster(client, plan, "laptop", on_launched=recorded.append)
    assert recorded == nodes and len(nodes) == 3
    assert {n.region for n in nodes} == {"us-west-2"}
    assert sorted(i.name for i in fake.instances.values()) == list(node_names("demo", 3))
    assert len(fake.calls("POST", "/instance-operations/launch")) == 3  # one per call


def test_no_capacity_up_front_launches_nothing(fake, client):
    fake.set_capacity(TYPE, ["us-south-1"])
    with pytest.raises(ClusterCapacityError):
        plan_cluster_launch(client.instance_types(), TYPE, [], "demo", 3)
    assert fake.calls("POST", "/instance-operations/launch") == []
    assert fake.instances == {}


def test_partial_capacity_rolls_back_so_nothing_bills(fake, client):
    fake.set_capacity(TYPE, ["us-east-1"])
    fake.limit_capacity(TYPE, "us-east-1", 2)  # room for 2 of the 3 nodes
    recorded, terminated = [], []
    plan = plan_cluster_launch(client.instance_types(), TYPE, [], "demo", 3)
    with pytest.raises(ClusterCapacityError) as info:
        launch_cluster(client, plan, "laptop", on_launched=recorded.append,
                       on_terminated=terminated.append)
    text = str(info.value)
    assert "Only 2 of 3 nodes" in text and "nothing is billing" in text
    assert "Choose one" in text and "lower scale.nodes" in text
    assert terminated == recorded and len(recorded) == 2
    assert billing(fake) == []
    assert len(fake.calls("PUT", "/firewall-rules")) == 0


def test_quota_running_out_midway_rolls_back_too(fake, client):
    fake.quota_instances = 1
    plan = plan_cluster_launch(client.instance_types(), TYPE, ["us-east-1"], "demo", 3)
    with pytest.raises(ClusterCapacityError, match="lack of quota"):
        launch_cluster(client, plan, "laptop", on_launched=lambda node: None)
    assert billing(fake) == []


def test_a_full_first_region_moves_on_while_nothing_is_launched(fake, client):
    fake.refuse_launch_in("us-east-1")
    plan = plan_cluster_launch(client.instance_types(), TYPE, ["us-east-1", "us-west-2"],
                               "demo", 2)
    nodes = launch_cluster(client, plan, "laptop", on_launched=lambda node: None)
    assert {n.region for n in nodes} == {"us-west-2"} and len(billing(fake)) == 2
