"""Small output helpers shared by the CLI modules, light enough for the quick commands."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

import typer

from intelligensi_deploy.redact import redact


def print_json(data: Any) -> None:
    """`--json` output: redacted, one document on stdout."""
    sys.stdout.write(redact(json.dumps(data, indent=2, default=str)) + "\n")


def approver(assume_yes: bool) -> Callable[[str], bool] | None:
    """What asks before something bills: a yes/no prompt on a terminal, unless `--yes`;
    None (go ahead, after printing the same line) without a terminal."""
    if assume_yes or not sys.stdin.isatty():
        return None
    return lambda question: typer.confirm(question, default=False)


def capacity_poll_s(environ: Mapping[str, str] = os.environ) -> float:
    """How often `up --wait` asks Lambda for capacity: $FLUXDEPLOY_CAPACITY_POLL_S, else 60."""
    raw = environ.get("FLUXDEPLOY_CAPACITY_POLL_S", "").strip()
    try:
        value = float(raw) if raw else 60.0
    except ValueError:
        raise typer.BadParameter(f"FLUXDEPLOY_CAPACITY_POLL_S={raw!r} is not a number of "
                                 "seconds (e.g. 60)") from None
    if value <= 0:
        raise typer.BadParameter(f"FLUXDEPLOY_CAPACITY_POLL_S={raw!r} must be above 0")
    return value
