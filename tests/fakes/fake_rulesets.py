"""The firewall rulesets of the fake Lambda API (tests/fakes/fake_lambda.py wires them in).

As ``lambda-cloud-openapi.json`` describes them: ``GET/POST /firewall-rulesets``, ``GET/PATCH/
DELETE /firewall-rulesets/{id}`` and the global ruleset (``GET/PATCH
/firewall-rulesets/global``, rules only). A ruleset lives in one region; its
``instance_ids`` are the live instances launched with it (the launch request's
``firewall_rulesets``, which must name rulesets of the instance's region); ``DELETE`` answers
``firewall-rulesets/firewall-ruleset-in-use`` while one of them is not terminated.
``in_use_refusals`` makes the next deletes answer that anyway (an instance still
terminating, as Lambda may report it for a while).

The fake's error class, rule checker and region view are passed in, so this module imports
nothing from fake_lambda (no import cycle).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

GLOBAL_ID = "global"
IN_USE = "firewall-rulesets/firewall-ruleset-in-use"
GONE = "global/object-does-not-exist"


class FakeRulesets:
    """Rulesets by id, and the account's global ruleset."""

    def __init__(self, *, error: Callable[..., Exception],
                 check_rule: Callable[[Any], dict[str, Any]],
                 region: Callable[[str], dict[str, str]], regions: Iterable[str],
                 attached_to: Callable[[str], list[str]]) -> None:
        self._error, self._check_rule, self._region = error, check_rule, region
        self._regions = set(regions)
        self._attached_to = attached_to  # ruleset id -> ids of live instances using it
        self.rulesets: dict[str, dict[str, Any]] = {}
        self.global_rules: list[dict[str, Any]] = [
            {"protocol": "tcp", "port_range": [22, 22], "source_network": "0.0.0.0/0",
             "description": "Allow SSH from anywhere"}]
        self.in_use_refusals = 0

    def routes(self) -> dict[str, Callable[..., Any]]:
        """Handlers by OpenAPI operationId."""
        return {
            "firewallRulesetsList": self._list,
            "createFirewallRuleset": self._create,
            "getFirewallRuleset": self._get,
            "updateFirewallRuleset": self._update,
            "deleteFirewallRuleset": self._delete,
            "getGlobalFirewallRuleset": self._get_global,
            "updateGlobalFirewallRuleset": self._update_global,
        }

    # ----------------------------------------------------------------- for the launch

    def check_launch(self, entries: Any, region: str) -> list[str]:
        """The ruleset ids a launch request attaches; an error as Lambda's for an unknown one
        or one of another region."""
        if entries is None:
            return []
        ids = []
        for entry in entries:
            ruleset = self.rulesets.get(str(entry.get("id")))
            if ruleset is None:
                raise self._error(404, GONE, f"Firewall ruleset {entry.get('id')!r} does not "
                                  "exist.", "Check the name and try again.")
            if ruleset["region"]["name"] != region:
                raise self._error(400, "global/invalid-parameters",
                                  f"Firewall ruleset {ruleset['id']} is in "
                                  f"{ruleset['region']['name']}, not {region}: the firewall "
                                  "rulesets must exist in the same region as the instance.")
            ids.append(ruleset["id"])
        return ids

    def view(self, ruleset_id: str) -> dict[str, Any]:
        """One ruleset as the API shows it (``instance_ids`` computed now)."""
        return {**self.rulesets[ruleset_id], "instance_ids": self._attached_to(ruleset_id)}

    # ----------------------------------------------------------------- endpoints

    def _list(self, _body: Any) -> list[dict[str, Any]]:
        return [self.view(ruleset_id) for ruleset_id in self.rulesets]

    def _rules(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        if not isinstance(body.get("rules"), list):
            raise self._error(400, "global/invalid-parameters", "rules must be a list.")
        return [self._check_rule(rule) for rule in body["rules"]]

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        missing = [k for k in ("name", "region", "rules") if k not in body]
        if missing:
            raise self._error(400, "global/invalid-parameters",
                              f"Missing field(s): {', '.join(missing)}.")
        if body["region"] not in self._regions:
            raise self._error(400, "global/invalid-parameters",
                              f"Unknown region {body['region']!r}.")
        ruleset_id = uuid.uuid4().hex
        self.rulesets[ruleset_id] = {
            "id": ruleset_id, "name": str(body["name"]), "region": self._region(body["region"]),
            "rules": self._rules(body),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        return self.view(ruleset_id)

    def _known(self, ruleset_id: str) -> str:
        if ruleset_id not in self.rulesets:
            raise self._error(404, GONE, "Firewall ruleset does not exist or you do not have "
                              "permission to access it.",
                              "Check your firewall ruleset ID and try again.")
        return ruleset_id

    def _get(self, _body: Any, ruleset_id: str) -> dict[str, Any]:
        return self.view(self._known(ruleset_id))

    def _update(self, body: dict[str, Any], ruleset_id: str) -> dict[str, Any]:
        ruleset = self.rulesets[self._known(ruleset_id)]
        if "name" in body:
            ruleset["name"] = str(body["name"])
        if "rules" in body:
            ruleset["rules"] = self._rules(body)
        return self.view(ruleset_id)

    def _delete(self, _body: Any, ruleset_id: str) -> dict[str, Any]:
        self._known(ruleset_id)
        if self.in_use_refusals > 0 or self._attached_to(ruleset_id):
            self.in_use_refusals = max(0, self.in_use_refusals - 1)
            raise self._error(400, IN_USE, "Firewall ruleset is in use by one or more "
                              "instances.", "Terminate all instances that are using the "
                              "ruleset before deleting it.")
        del self.rulesets[ruleset_id]
        return {}

    def _get_global(self, _body: Any) -> dict[str, Any]:
        return {"id": GLOBAL_ID, "name": "Default Workspace Global Rules",
                "rules": [dict(rule) for rule in self.global_rules]}

    def _update_global(self, body: dict[str, Any]) -> dict[str, Any]:
        if "rules" in body:
            self.global_rules = self._rules(body)
        return self._get_global(None)
