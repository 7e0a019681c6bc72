"""The state folder read as plain records, without pydantic (quick commands stay quick).

`state.StateStore` owns writing and the validated `Deployment` model; this module only finds
and reads the JSON files, and holds the pure rules over a record that both sides share.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from intelligensi_deploy.errors import FluxdeployError

# Phases in which nothing exists yet on an SSH host or this machine (a Lambda record counts
# its instances, firewall ruleset and legacy firewall rules instead).
NOTHING_CREATED_PHASES = ("launching", "booting", "down")


def state_root() -> Path:
    return Path(os.environ.get("FLUXDEPLOY_HOME") or "~/.local/state/fluxdeploy").expanduser()


def deployments_dir(root: Path | None = None) -> Path:
    return (root or state_root()) / "deployments"


def read_records(folder: Path | None = None) -> list[dict[str, Any]]:
    """Every deployment record as a dict, most recently updated first.

    A file that is not a JSON record raises FluxdeployError naming it: it may be the only
    trace of a running (billed) instance, so it is never skipped in silence.
    """
    folder = folder or deployments_dir()
    if not folder.is_dir():
        return []
    records = []
    for path in folder.glob("*.json"):
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
            problem = "" if isinstance(data, dict) and data.get("name") else "no deployment name"
        except (OSError, ValueError) as exc:
            problem = str(exc)
        if problem:
            raise FluxdeployError(
                f"The deployment record {path} is not readable ({problem}).",
                fix="Look at it: if it names an instance, terminate that in the Lambda "
                "dashboard; then move the file out of the way.",
            )
        records.append(data)
    return sorted(records, key=lambda r: r.get("updated_at") or 0.0, reverse=True)


def holds_resources(record: Mapping[str, Any]) -> bool:
    """Whether anything exists that `down` must clean up: for Lambda an instance (of any
    node), the deployment's firewall ruleset or a legacy firewall rule; for an SSH host or
    this machine, a container or secrets file (phase deploying on)."""
    if record.get("provider") == "lambda":
        nodes = record.get("nodes") or []
        return bool(record.get("instance_id") or record.get("firewall_rule")
                    or record.get("firewall_ruleset_id")
                    or record.get("ray_rule_ips")
                    or any(node.get("instance_id") for node in nodes))
    return record.get("phase") not in NOTHING_CREATED_PHASES


def nothing_launched_message(record: Mapping[str, Any]) -> str:
    """What to tell the user about a record that holds nothing (a phantom)."""
    return (f"nothing was launched for deployment {record.get('name')!r} (phase "
            f"{record.get('phase')}); `fluxdeploy down --name {record.get('name')}` forgets "
            "this record, `fluxdeploy up` starts over")
