"""A deployment's inbound rules on Lambda: its own firewall ruleset (created before the
launch, attached at launch, PATCHed when the nodes' addresses are known, deleted by `down`
once the instances are gone), and the account-wide legacy rules an earlier fluxdeploy wrote
for it (removed by `down`; never written for a new launch). cloud/rulesets.py holds the
pure rules and the calls; this module keeps the record in step with them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from intelligensi_deploy import names
from intelligensi_deploy.cloud import provision, rulesets
from intelligensi_deploy.cloud.lambda_api import LambdaClient
from intelligensi_deploy.cloud.lambda_types import FirewallRule, FirewallRuleset
from intelligensi_deploy.cloud.ray_ports import merge_ray_rules, remove_ray_rules
from intelligensi_deploy.deploy.reporter import Reporter
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.presets import Preset
from intelligensi_deploy.state import Deployment, Tracker

LEGACY_WARNING = ("this instance was launched by an earlier fluxdeploy without a firewall "
                  "ruleset (one cannot be attached to a running instance), so its rules stay "
                  "account-wide: `fluxdeploy down` then `up` moves it to its own ruleset")


def wanted_rules(preset: Preset, deployment: str, node_ips: Sequence[str] = ()
                 ) -> list[FirewallRule]:
    """The deployment's rules as the preset wants them: SSH, the public port, Ray's /32s."""
    public = preset.public_cidr if preset.exposure == "public" else None
    return rulesets.deployment_rules(deployment, port=preset.port, public_cidr=public,
                                     node_ips=node_ips)


def ruleset_hook(preset: Preset, tracker: Tracker, ui: Reporter, client: LambdaClient,
                 node_ips: Sequence[str] = ()) -> Callable[[str], list[str]]:
    """For a launch: the id of the deployment's ruleset in a region (made or reused there and
    recorded before the launch uses it), as `launch_first_available` / `launch_cluster` ask."""
    def in_region(region: str) -> list[str]:
        def record(ruleset: FirewallRuleset) -> None:
            tracker.record(firewall_ruleset_id=ruleset.id)
            ui.detail(f"created firewall ruleset {ruleset.name} ({ruleset.id}) in {region}; "
                      "recorded (`fluxdeploy down` deletes it)")

        ruleset = rulesets.ensure_ruleset(
            client, tracker.dep.name, region, wanted_rules(preset, tracker.dep.name, node_ips),
            tracker.dep.firewall_ruleset_id, record)
        ui.detail(f"ruleset {ruleset.id} ({region}): {rulesets.describe_rules(ruleset.rules)}")
        return [ruleset.id]

    return in_region


def drop_unused_ruleset(tracker: Tracker, client: LambdaClient, ui: Reporter) -> None:
    """After a launch that launched nothing: delete the ruleset made for it, and forget the
    record when that was all it held."""
    ruleset_id = tracker.dep.firewall_ruleset_id
    if not ruleset_id or tracker.dep.instance_id or any(n.instance_id for n in tracker.dep.nodes):
        return
    try:
        rulesets.delete_ruleset(client, ruleset_id, attempts=1)
    except FluxdeployError as exc:
        ui.warn(f"Could not delete the unused firewall ruleset {ruleset_id} ({exc.message}); "
                "it stays recorded: `fluxdeploy down` deletes it.")
        return
    tracker.update(firewall_ruleset_id=None)
    if tracker.recorded and not tracker.dep.holds_resources:
        tracker.forget()


def open_ports(preset: Preset, tracker: Tracker, ui: Reporter, client: LambdaClient,
               node_ips: Sequence[str] = ()) -> None:
    """The deployment's inbound rules brought to the preset: its ruleset PATCHed (SSH, the
    public port, the nodes' /32s); an instance launched before rulesets keeps the legacy
    account-wide rules (the public port's rule added as then, a cluster's Ray rules kept
    matching its nodes)."""
    dep = tracker.dep
    region = dep.region or ""
    if dep.firewall_ruleset_id:
        current = rulesets.find_ruleset(client, dep.firewall_ruleset_id)
        if current is None:
            raise FluxdeployError(
                f"The firewall ruleset {dep.firewall_ruleset_id} of deployment {dep.name!r} "
                "no longer exists at Lambda (deleted by hand?): its instances have lost "
                "their rules.",
                fix="Run `fluxdeploy down` and `fluxdeploy up` again (a ruleset can only be "
                    "attached at launch).",
                doc="firewall-rulesets")
        rulesets.sync_rules(client, current, wanted_rules(preset, dep.name, node_ips))
        if preset.exposure == "public":
            ui.detail(f"TCP {preset.port} open from {preset.public_cidr} (the deployment's "
                      "firewall ruleset)")
            if not provision.firewall_applies(region):
                ui.warn(f"{region}: Lambda's OpenAPI file says its legacy firewall rules do "
                        "not apply there and says nothing of rulesets; the port's rule is in "
                        "the deployment's ruleset: check it with `fluxdeploy doctor`.")
    if dep.ray_rule_ips or (node_ips and not dep.firewall_ruleset_id):
        _legacy_ray_rules(tracker, ui, client, node_ips)
    if (not dep.firewall_ruleset_id and preset.exposure == "public"
            and dep.firewall_rule is None):
        if not provision.firewall_applies(region):
            ui.warn(f"{region} has no Lambda firewall rules: the port is open as published.")
        else:
            _legacy_public_rule(preset, tracker, ui, client)


def _legacy_public_rule(preset: Preset, tracker: Tracker, ui: Reporter,
                        client: LambdaClient) -> None:
    ui.warn(f"The public port's rule is account-wide: {LEGACY_WARNING}.")
    rule = provision.ensure_firewall_rule(client, preset.port, preset.public_cidr,
                                          names.rule_description(tracker.dep.name))
    if rule is not None:
        tracker.update(firewall_rule=rule.to_api())
        ui.detail(f"opened TCP {preset.port} from {preset.public_cidr} (legacy firewall rule)")


def _legacy_ray_rules(tracker: Tracker, ui: Reporter, client: LambdaClient,
                      node_ips: Sequence[str]) -> None:
    """An earlier fluxdeploy's cluster: its account-wide Ray rules kept to exactly its nodes."""
    ui.warn(f"Ray's /32 rules are account-wide: {LEGACY_WARNING}.")
    tracker.update(ray_rule_ips=sorted(set(node_ips) | set(tracker.dep.ray_rule_ips)))
    rules = client.firewall_rules()
    wanted = merge_ray_rules(rules, tracker.dep.name, node_ips)
    if [r.to_api() for r in wanted] != [r.to_api() for r in rules]:
        client.set_firewall_rules(wanted)
    tracker.update(ray_rule_ips=list(node_ips))


def remove_legacy_rules(dep: Deployment, tracker: Tracker, ui: Reporter,
                        client: LambdaClient) -> None:
    """The account-wide rules an earlier fluxdeploy recorded for this deployment (its Ray
    /32 rules, its public port's rule), removed; no other rule of the account is touched."""
    if dep.ray_rule_ips:
        rules = client.firewall_rules()
        kept = remove_ray_rules(rules, dep.name)
        if len(kept) != len(rules):
            client.set_firewall_rules(kept)
            ui.step(f"Removed the legacy Ray firewall rules of {len(rules) - len(kept)} nodes")
        tracker.update(ray_rule_ips=[])
    if dep.firewall_rule:
        provision.remove_firewall_rule(client, dep.firewall_rule)
        ui.step(f"Removed the legacy firewall rule for TCP {dep.port}")
        tracker.update(firewall_rule=None)


def delete_deployment_ruleset(tracker: Tracker, ui: Reporter, client: LambdaClient) -> None:
    """After the instances are terminated: the deployment's ruleset deleted (waiting while
    Lambda says an instance still uses it); if Lambda keeps refusing, it stays recorded and
    the warning says to run `down` again."""
    ruleset_id = tracker.dep.firewall_ruleset_id
    if not ruleset_id:
        return
    try:
        deleted = rulesets.delete_ruleset(client, ruleset_id, on_wait=ui.detail)
    except rulesets.RulesetStillInUse as exc:
        ui.warn(f"{exc.message} {exc.fix}")
        return
    if deleted:
        ui.step(f"Deleted the firewall ruleset {ruleset_id}")
    else:
        ui.detail(f"firewall ruleset {ruleset_id} was already gone")
    tracker.update(firewall_ruleset_id=None)
