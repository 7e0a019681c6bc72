"""`fluxdeploy diagnose`, the command's entry (`diagnose_main`, called by cli.py): a saved log
(a file, or stdin) through the diagnosis, rendered like doctor's findings.

A quick command: it loads the diagnosis and the report only, never doctor's checks, httpx,
paramiko or pydantic (tests/unit/test_cli_fast.py).
"""

from __future__ import annotations

import json
import sys

from intelligensi_deploy.diagnosis.diagnose import diagnose
from intelligensi_deploy.doctor.report import (
    EXIT_COULD_NOT_RUN,
    diagnose_exit_code,
    findings_json,
    print_rich,
    render_findings,
)


def diagnose_main(file: str, *, as_json: bool = False) -> int:
    """Diagnose a saved log (`-`: stdin); exit 1 when a finding is an error, 2 when unreadable."""
    try:
        if file == "-":
            text = sys.stdin.read()
        else:
            with open(file, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
    except OSError as exc:
        print(f"diagnose: cannot read {file}: {exc.strerror}", file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    findings = diagnose(text)
    if as_json:
        print(json.dumps(findings_json(findings), indent=2))
    else:
        print_rich(render_findings(findings))
    return diagnose_exit_code(findings)
