"""What `status` says about a deployment's limits: when it terminates, and, once the watchdog
has ended it, why. Pure: the record's limits, the server's `activity` and the watchdog's log
lines in, figures and words out."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from intelligensi_deploy.cost import format_duration

_REACHED = re.compile(r"fluxdeploy-watchdog: limit reached: (idle|max_duration): (.*)")
OUTSIDE = "terminated outside fluxdeploy (not by `fluxdeploy down`; the watchdog's log was out "
"of reach)"


def deadline(idle_limit_s: float | None, max_duration_s: float | None,
             launched_at: float | None, activity: Mapping[str, Any] | None,
             now: float) -> dict[str, Any] | None:
    """Seconds left before each limit ends the deployment, and one line that says it
    (`terminates in 12 min if idle`); None without limits."""
    if idle_limit_s is None and max_duration_s is None:
        return None
    words: list[str] = []
    idle_left = max_left = None
    if idle_limit_s is not None:
        idle = (activity or {}).get("idle_s")
        if (activity or {}).get("in_flight"):
            words.append("not idle: a request is in progress")
        elif idle is None:
            words.append(f"terminates after {format_duration(idle_limit_s)} idle, counted "
                         "from ready")
        else:
            idle_left = max(0.0, idle_limit_s - float(idle))
            words.append(f"terminates in {format_duration(idle_left)} if idle")
    if max_duration_s is not None:
        if launched_at:
            max_left = max(0.0, launched_at + max_duration_s - now)
            words.append(f"terminates in {format_duration(max_left)} (max_duration)")
        else:
            words.append(f"max_duration {format_duration(max_duration_s)}")
    return {"idle_limit_s": idle_limit_s, "max_duration_s": max_duration_s,
            "idle_remaining_s": idle_left, "max_remaining_s": max_left,
            "text": "; ".join(words)}


def ended_by(log_text: str | None) -> tuple[str, str | None]:
    """Why the instances are gone, from the watchdog's log: (`idle` or `max_duration`, its
    line), or the words for an end nobody here saw."""
    for line in reversed((log_text or "").splitlines()):
        found = _REACHED.search(line)
        if found:
            return found.group(1), line.strip()
    return OUTSIDE, None
