"""Every instance on the Lambda account, set against this machine's records: which deployment
recorded it, and which ones nobody here knows of (`fluxdeploy instances`, `doctor`).

An instance launched by fluxdeploy carries the tag `fluxdeploy-deployment=<name>` (names.py).
One that is tagged but has no record here was launched from another machine, or its state
folder was lost: it bills until someone terminates it. Pure: the API's answers and the plain
records in, rows out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from intelligensi_deploy.cloud.lambda_types import Instance
from intelligensi_deploy.cost import Spend
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.names import DEPLOYMENT_TAG

RECORDED = "recorded"
UNRECORDED = "tagged by fluxdeploy but not recorded here"
FOREIGN = "not launched by fluxdeploy"
GONE = ("terminated", "terminating")


@dataclass(frozen=True)
class InstanceRow:
    """One instance of the account, as `fluxdeploy instances` lists it."""

    id: str
    name: str | None
    instance_type: str
    region: str
    ip: str | None
    status: str
    deployment: str | None  # the record here that holds it
    tagged: str | None  # the deployment named by its fluxdeploy tag
    verdict: str  # RECORDED, UNRECORDED or FOREIGN
    spend: Spend  # uptime and spend only where a record knows the launch time

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "spend": self.spend.to_dict()}


def recorded_instances(records: Iterable[Mapping[str, Any]]
                       ) -> dict[str, tuple[str, float | None]]:
    """Instance id -> (deployment, launch time) for every instance a live record holds."""
    found: dict[str, tuple[str, float | None]] = {}
    for record in records:
        if record.get("phase") == "down":
            continue
        if record.get("instance_id"):
            found[record["instance_id"]] = (record["name"], record.get("launched_at"))
        for node in record.get("nodes") or []:
            if node.get("instance_id"):
                found[node["instance_id"]] = (record["name"], node.get("launched_at"))
    return found


def classify(instances: Sequence[Instance], records: Iterable[Mapping[str, Any]],
             now: float) -> list[InstanceRow]:
    """A row per instance that still exists (terminated ones are left out)."""
    known = recorded_instances(records)
    rows = []
    for inst in instances:
        if inst.status in GONE:
            continue
        deployment, launched_at = known.get(inst.id, (None, None))
        tagged = inst.tag(DEPLOYMENT_TAG)
        verdict = RECORDED if deployment else UNRECORDED if tagged else FOREIGN
        rows.append(InstanceRow(inst.id, inst.name, inst.instance_type, inst.region, inst.ip,
                                inst.status, deployment, tagged, verdict,
                                Spend.of(inst.price_cents_per_hour, launched_at, now)))
    return rows


def forgotten(rows: Iterable[InstanceRow]) -> list[InstanceRow]:
    """Instances fluxdeploy launched that no record here knows of (they bill unseen)."""
    return [row for row in rows if row.verdict == UNRECORDED]


def pick_for_termination(rows: Sequence[InstanceRow], instance_id: str) -> InstanceRow:
    """The row `down --instance ID` may terminate: one that exists and that no record here
    holds (a recorded one goes through `down --name`, which also removes its firewall rules
    and its container)."""
    row = next((r for r in rows if r.id == instance_id), None)
    if row is None:
        raise FluxdeployError(
            f"No running instance {instance_id!r} on this Lambda account.",
            fix="`fluxdeploy instances` lists the account's instances and their ids.")
    if row.deployment:
        raise FluxdeployError(
            f"Instance {instance_id} is deployment {row.deployment!r}'s (recorded here).",
            fix=f"Run `fluxdeploy down --name {row.deployment}`: it also removes the "
                "deployment's firewall rules and its record.")
    return row
