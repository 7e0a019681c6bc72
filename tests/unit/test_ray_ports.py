"""Ray's ports: one /32 firewall rule per node, never the world; dashboard on loopback."""

from __future__ import annotations

import pytest

from intelligensi_deploy.cloud.lambda_types import FirewallRule
from intelligensi_deploy.cloud.ray_ports import (
    RAY_PORTS,
    merge_ray_rules,
    ray_firewall_rules,
    ray_start_args,
    remove_ray_rules,
    world_open_ray_rules,
)
from intelligensi_deploy.errors import FluxdeployError

SSH = FirewallRule("tcp", (22, 22), "0.0.0.0/0", "Allow SSH from anywhere")
IPS = ["203.0.113.10", "203.0.113.11", "203.0.113.12"]


def test_one_rule_per_node_each_a_single_host():
    rules = ray_firewall_rules("demo", IPS)
    assert [r.source_network for r in rules] == [f"{ip}/32" for ip in IPS]
    assert {r.port_range for r in rules} == {RAY_PORTS.range}
    assert all(r.protocol == "tcp" for r in rules)
    assert world_open_ray_rules(rules) == []


def test_the_world_is_never_a_node():
    with pytest.raises(FluxdeployError, match="never opened to the world"):
        ray_firewall_rules("demo", ["0.0.0.0"])
    with pytest.raises(FluxdeployError, match="not a node's IPv4 address"):
        ray_firewall_rules("demo", ["10.0.0.0/8"])


def test_every_ray_port_lies_in_the_ruled_range_and_the_dashboard_does_not():
    low, high = RAY_PORTS.range
    for name, port in vars(RAY_PORTS).items():
        if name == "dashboard":
            assert not low <= port <= high
        else:
            assert low <= port <= high, name
    for argv in (ray_start_args("head", node_ip="203.0.113.10"),
                 ray_start_args("worker", head_address="203.0.113.10", node_ip="203.0.113.11",
                                resources='{"fakegpu": 1}')):
        ports = [int(a.split("=")[1]) for a in argv
                 if a.startswith("--") and "port" in a and "dashboard-port" not in a]
        assert ports and all(low <= p <= high for p in ports), argv
    head = ray_start_args("head", node_ip="203.0.113.10")
    assert "--dashboard-host=127.0.0.1" in head and "--head" in head


def test_merge_keeps_other_rules_and_follows_the_nodes():
    first = merge_ray_rules([SSH], "demo", IPS)
    assert first[0] == SSH and len(first) == 4
    other = merge_ray_rules(first, "other", ["198.51.100.1"])
    shrunk = merge_ray_rules(other, "demo", IPS[:2])  # a node left
    assert [r.source_network for r in shrunk if "demo" in r.description] == [
        "203.0.113.10/32", "203.0.113.11/32"]
    assert any("other" in r.description for r in shrunk)
    assert remove_ray_rules(shrunk, "demo") == [SSH, *ray_firewall_rules("other",
                                                                         ["198.51.100.1"])]


def test_world_open_rules_on_ray_ports_are_found():
    wide = FirewallRule("tcp", (6000, 7000), "0.0.0.0/0", "someone's")
    subnet = FirewallRule("all", None, "203.0.113.0/24", "office")
    assert world_open_ray_rules([SSH, wide, subnet]) == [wide, subnet]
