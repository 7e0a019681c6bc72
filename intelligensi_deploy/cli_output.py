"""Small output helpers shared by the CLI modules, light enough for the quick commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
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
