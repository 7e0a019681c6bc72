"""The deployment's firewall ruleset, pure (cloud/rulesets.py), and doctor reading it
instead of the account's legacy rules (the `external` check and `ray-ports-open`)."""

from __future__ import annotations

from intelligensi_deploy.cloud.lambda_types import FirewallRule, FirewallRuleset
from intelligensi_deploy.cloud.rulesets import (
    deployment_rules,
    describe_rules,
    ruleset_name,
    same_rules,
)
from intelligensi_deploy.deploy.single import single_watch_plan
from intelligensi_deploy.doctor.runner import run_checks
from intelligensi_deploy.preset_limits import LimitsSection
from intelligensi_deploy.state import Deployment
from intelligensi_deploy.state_records import holds_resources
from intelligensi_deploy.watchdog_plan import watchdog_env
from tests.unit.test_doctor_checks import FakeLambda, _external_down, check


def test_a_tunnel_deployment_gets_ssh_only() -> None:
    rules = deployment_rules("gpu", port=8000)
    assert [(r.protocol, r.port_range, r.source_network) for r in rules] == [
        ("tcp", (22, 22), "0.0.0.0/0")]
    assert rules[0].description == "fluxdeploy gpu ssh"


def test_a_public_cluster_gets_its_port_and_one_ray_rule_per_node() -> None:
    rules = deployment_rules("trio", port=8000, public_cidr="203.0.113.7",
                             node_ips=["198.51.100.1", "198.51.100.2", "198.51.100.1"])
    assert describe_rules(rules) == ("tcp 22 from 0.0.0.0/0; tcp 8000 from 203.0.113.7/32; "
                                     "tcp 6379-6499 from 198.51.100.1/32; "
                                     "tcp 6379-6499 from 198.51.100.2/32")
    assert rules[1].description == "fluxdeploy trio"  # as the legacy rule was named


def test_same_rules_ignores_order_and_cidr_spelling() -> None:
    a = deployment_rules("x", port=8000, public_cidr="203.0.113.7")
    b = [FirewallRule(r.protocol, r.port_range, r.source_network.removesuffix("/32"),
                      r.description) for r in reversed(a)]
    assert same_rules(a, b) and not same_rules(a, a[:1])


def test_the_name_fits_lambdas_limit() -> None:
    assert ruleset_name("gpu") == "fluxdeploy-gpu"
    assert len(ruleset_name("x" * 100)) == 64


def test_a_recorded_ruleset_alone_holds_resources() -> None:
    assert holds_resources({"provider": "lambda", "firewall_ruleset_id": "rs1"})
    assert Deployment(name="a", preset="p", provider="lambda",
                      firewall_ruleset_id="rs1").holds_resources
    assert not holds_resources({"provider": "lambda"})


class RulesetLambda(FakeLambda):
    """doctor's stand-in for the client, with the deployment's ruleset."""

    def __init__(self, ruleset_rules: list[FirewallRule], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.ruleset = FirewallRuleset("rs1", "fluxdeploy-flux", self.instance.region,
                                       tuple(ruleset_rules))

    def get_firewall_ruleset(self, ruleset_id: str) -> FirewallRuleset:
        self.calls.append("get_firewall_ruleset")
        return self.ruleset


def test_external_reads_the_deployments_ruleset_not_the_account() -> None:
    cloud = RulesetLambda([FirewallRule("tcp", (22, 22), "0.0.0.0/0", "ssh")])
    deps = _external_down(cloud=cloud)
    deps.deployment = deps.deployment.model_copy(update={"firewall_ruleset_id": "rs1"})
    external = check(run_checks(deps), "external")
    assert external.doc == "firewall-closed"
    assert ("no rule of the deployment's firewall ruleset rs1 opens TCP 8000 "
            "(rules: tcp 22 from 0.0.0.0/0)") in external.evidence[1]
    assert "firewall_rules" not in cloud.calls and "get_firewall_ruleset" in cloud.calls


def test_in_us_south_1_the_ruleset_is_still_read() -> None:
    cloud = RulesetLambda([FirewallRule("tcp", (8000, 8000), "203.0.113.0/24", "p")],
                          region="us-south-1")
    deps = _external_down(cloud=cloud, region="us-south-1")
    deps.deployment = deps.deployment.model_copy(update={"firewall_ruleset_id": "rs1"})
    assert "from 203.0.113.0/24" in check(run_checks(deps), "external").evidence[1]


def test_the_watchdog_is_told_the_ruleset_and_old_records_keep_their_legacy_rules() -> None:
    new = Deployment(name="gpu", preset="p", provider="lambda", instance_id="i1",
                     firewall_ruleset_id="rs1")
    env = watchdog_env(single_watch_plan(new, "img", LimitsSection(), {}))
    assert env["FLUXDEPLOY_WATCH_RULESET"] == "rs1" and env["FLUXDEPLOY_WATCH_RULES"] == "[]"
    old = new.model_copy(update={"firewall_ruleset_id": None, "firewall_rule": {"x": 1}})
    env = watchdog_env(single_watch_plan(old, "img", LimitsSection(), {}))
    assert env["FLUXDEPLOY_WATCH_RULESET"] == ""
    assert env["FLUXDEPLOY_WATCH_RULES"] == '["fluxdeploy gpu"]'
