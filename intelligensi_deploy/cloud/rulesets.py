"""Each deployment's own Lambda firewall ruleset: its rules (pure) and the calls that keep it.

A ruleset lives in one region and applies to the instances launched with it (the launch
request's ``firewall_rulesets``); Lambda has no call that attaches one to a running instance
(``POST /instances/{id}`` takes a name only). Unlike the legacy ``PUT /firewall-rules``, which
overwrites the inbound rules of every instance of the account, a ruleset touches only its own
instances, and a ``PATCH`` of it never races another deployment's rules.

Lambda's OpenAPI file does not say whether an attached ruleset adds to the account's global
rules or replaces them, so every deployment's ruleset carries TCP 22 itself: ``up`` reaches
SSH either way (PLAYBOOK.md#firewall-rulesets).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from intelligensi_deploy import names
from intelligensi_deploy.cloud.delete_retry import delete_when_free
from intelligensi_deploy.cloud.lambda_errors import FirewallRulesetInUse, ObjectNotFound
from intelligensi_deploy.cloud.lambda_types import FirewallRule, FirewallRuleset
from intelligensi_deploy.cloud.provision import normalize_cidr
from intelligensi_deploy.cloud.ray_ports import RAY_PORTS, RayPorts, ray_firewall_rules
from intelligensi_deploy.errors import FluxdeployError

if TYPE_CHECKING:
    from intelligensi_deploy.cloud.lambda_api import LambdaClient

SSH_PORT = 22
SSH_SOURCE = "0.0.0.0/0"  # as Lambda's own default rule: fluxdeploy's keys are the lock
NAME_MAX = 64  # FirewallRulesetCreateRequest.name maxLength
DELETE_ATTEMPTS = 12
DELETE_DELAY_S = 10.0  # between refusals while the instances terminate: about 2 minutes


class RulesetStillInUse(FluxdeployError):
    """Lambda keeps refusing to delete the ruleset: an instance using it is not terminated."""


# --------------------------------------------------------------------------- pure


def ruleset_name(deployment: str) -> str:
    """``fluxdeploy-<deployment>``, within Lambda's 64 characters."""
    return f"{names.PREFIX}-{deployment}"[:NAME_MAX]


def ssh_rule_description(deployment: str) -> str:
    return f"{names.PREFIX} {deployment} ssh"[:128]


def deployment_rules(deployment: str, *, port: int, public_cidr: str | None = None,
                     node_ips: Sequence[str] = (), ports: RayPorts = RAY_PORTS
                     ) -> list[FirewallRule]:
    """The inbound rules of one deployment: SSH (22) from anywhere; the serving ``port`` from
    ``public_cidr`` when it is public (None: tunnel only, no rule); for a cluster, Ray's port
    range from each node's address (/32, never wider)."""
    rules = [FirewallRule("tcp", (SSH_PORT, SSH_PORT), SSH_SOURCE,
                          ssh_rule_description(deployment))]
    if public_cidr is not None:
        rules.append(FirewallRule("tcp", (port, port), normalize_cidr(public_cidr),
                                  names.rule_description(deployment)))
    rules += ray_firewall_rules(deployment, node_ips, ports)
    return rules


def same_rules(a: Sequence[FirewallRule], b: Sequence[FirewallRule]) -> bool:
    """Whether two rule lists hold the same rules (order aside, CIDRs normalised)."""
    def key(rules: Sequence[FirewallRule]) -> list[str]:
        return sorted(repr((r.protocol, r.port_range, normalize_cidr(r.source_network),
                            r.description)) for r in rules)

    return key(a) == key(b)


def describe_rules(rules: Sequence[FirewallRule]) -> str:
    """``tcp 22 from 0.0.0.0/0; tcp 6379-6499 from 198.51.100.1/32``."""
    def one(rule: FirewallRule) -> str:
        low, high = rule.port_range or (0, 0)
        span = "" if rule.port_range is None else (f" {low}" if low == high else f" {low}-{high}")
        return f"{rule.protocol}{span} from {rule.source_network}"

    return "; ".join(one(rule) for rule in rules) or "none"


# --------------------------------------------------------------------------- calls


def find_ruleset(client: LambdaClient, ruleset_id: str) -> FirewallRuleset | None:
    """The ruleset, or None when Lambda no longer has it."""
    try:
        return client.get_firewall_ruleset(ruleset_id)
    except ObjectNotFound:
        return None


def sync_rules(client: LambdaClient, ruleset: FirewallRuleset,
               rules: Sequence[FirewallRule]) -> FirewallRuleset:
    """``ruleset`` holding exactly ``rules`` (one PATCH, only when they differ)."""
    if same_rules(ruleset.rules, rules):
        return ruleset
    return client.update_firewall_ruleset(ruleset.id, rules)


def ensure_ruleset(client: LambdaClient, deployment: str, region: str,
                   rules: Sequence[FirewallRule], recorded_id: str | None,
                   on_created: Callable[[FirewallRuleset], None]) -> FirewallRuleset:
    """The deployment's ruleset in ``region`` with exactly ``rules``.

    The recorded one when it still exists in that region (one recorded in another region,
    left by a launch that went elsewhere, is deleted); else an unattached one of the
    deployment's name in that region (a create whose answer was lost); else a new one.
    ``on_created`` records a ruleset that was not recorded yet, before anything uses it.
    """
    if recorded_id:
        current = find_ruleset(client, recorded_id)
        if current is not None and current.region == region:
            return sync_rules(client, current, rules)
        if current is not None:
            delete_ruleset(client, current.id, attempts=1)
    name = ruleset_name(deployment)
    orphan = next((r for r in client.firewall_rulesets()
                   if r.name == name and r.region == region and not r.instance_ids), None)
    ruleset = (sync_rules(client, orphan, rules) if orphan is not None
               else client.create_firewall_ruleset(name, region, rules))
    on_created(ruleset)
    return ruleset


def delete_ruleset(client: LambdaClient, ruleset_id: str, *, attempts: int = DELETE_ATTEMPTS,
                   delay_s: float = DELETE_DELAY_S,
                   on_wait: Callable[[str], None] | None = None) -> bool:
    """Delete the ruleset; True when deleted now, False when it was already gone.

    Lambda refuses while an instance using it is not terminated yet (``firewall-ruleset-in-
    use``; a terminating instance still counts): each refusal waits ``delay_s`` (the client's
    sleep) and asks again, up to ``attempts`` times, then RulesetStillInUse says what to do.
    """
    outcome = delete_when_free(lambda: client.delete_firewall_ruleset(ruleset_id),
                               FirewallRulesetInUse, attempts=attempts, delay_s=delay_s,
                               pause=client.pause, on_wait=on_wait,
                               held=f"ruleset {ruleset_id} is still attached to an instance "
                               "that is terminating")
    if outcome != "in-use":
        return outcome == "deleted"
    raise RulesetStillInUse(
        f"Lambda still refuses to delete firewall ruleset {ruleset_id}: an instance using it "
        f"is not terminated yet (asked {attempts} times). It is kept in the deployment's "
        "record; it costs nothing.",
        fix="Run `fluxdeploy down` again in a few minutes (it deletes the ruleset once Lambda "
            "shows the instances terminated), or delete it in the Lambda dashboard (Firewall).",
        doc="firewall-rulesets")
