"""`fluxdeploy status`: the recorded state joined with what the machine says now.

Records that hold nothing (down, or never launched) are reported from the file alone, with
neither pydantic nor a connection: `status` is a quick command until there is something live
to ask.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from intelligensi_deploy.cost import record_spend
from intelligensi_deploy.state_records import holds_resources, nothing_launched_message
from intelligensi_deploy.timeline import describe


def record_status(record: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
    """The report of one record: from the file when it holds nothing, else asked live
    (status_live.py); with what it costs (`cost`: price per hour, uptime, spend so far)."""
    report = _seen(record)
    report["cost"] = record_spend(record, time.time() if now is None else now)
    report["timeline"] = dict(record.get("timeline") or {})
    report["time_to_ready"] = describe(report["timeline"])
    return report


def _seen(record: Mapping[str, Any]) -> dict[str, Any]:
    if record.get("phase") != "down" and holds_resources(record):
        from intelligensi_deploy.status_live import live_status  # lazy: pydantic, ssh: live only

        return live_status(record)
    report = {k: v for k, v in record.items() if k != "host_key"}
    report.update(container=None, ready=None)
    if record.get("phase") != "down":
        report["error"] = nothing_launched_message(record)
    return report
