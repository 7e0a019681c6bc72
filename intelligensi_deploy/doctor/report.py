"""How findings and check results are shown: rich text for people, JSON for scripts, a
one-line summary, and the exit codes.

Exit codes. diagnose: 1 when any finding is an error, else 0. doctor: 0 when no check failed,
1 when one failed, 2 when doctor itself could not run (no deployment, broken state...).
Log lines are rendered as plain `Text`, never as rich markup (``[[gpu]]`` must print as is).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console, Group
from rich.text import Text

from intelligensi_deploy.diagnosis.findings import Finding
from intelligensi_deploy.doctor.check_types import CheckResult, DoctorReport

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_COULD_NOT_RUN = 2
PLAYBOOK = "PLAYBOOK.md"

_STATUS_STYLE = {"pass": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "bold red"),
                 "skip": ("-", "dim")}
_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


# --------------------------------------------------------------------------- exit codes


def diagnose_exit_code(findings: Iterable[Finding]) -> int:
    return EXIT_FAILED if any(f.severity == "error" for f in findings) else EXIT_OK


def doctor_exit_code(report: DoctorReport | None) -> int:
    """0 nothing failed, 1 a check failed, 2 doctor could not run (`report` is None)."""
    if report is None:
        return EXIT_COULD_NOT_RUN
    return EXIT_FAILED if report.failed else EXIT_OK


# --------------------------------------------------------------------------- JSON


def findings_json(findings: Sequence[Finding]) -> dict[str, Any]:
    """The `diagnose --json` document."""
    return {"findings": [f.to_dict() for f in findings]}


def doctor_json(report: DoctorReport) -> dict[str, Any]:
    """The `doctor --json` document."""
    return {
        "checks": [c.to_dict() for c in report.checks],
        "findings": [f.to_dict() for f in report.findings],
        "summary": summary_line(report),
    }


def could_not_run_json(message: str, fix: str = "", doc: str = "") -> dict[str, Any]:
    """`doctor --json` when doctor could not start (exit code 2)."""
    return {"checks": [], "findings": [], "summary": f"doctor could not run: {message}",
            "error": {"message": message, "fix": fix, "doc": doc}}


# --------------------------------------------------------------------------- summary


def summary_line(report: DoctorReport) -> str:
    """E.g. ``7 passed, 1 warning, 1 failed, 3 skipped: first failure: Container is running``."""
    counts = {s: sum(1 for c in report.checks if c.status == s)
              for s in ("pass", "warn", "fail", "skip")}
    parts = [f"{counts['pass']} passed"]
    if counts["warn"]:
        parts.append(f"{counts['warn']} warning{'s' if counts['warn'] > 1 else ''}")
    if counts["fail"]:
        parts.append(f"{counts['fail']} failed")
    if counts["skip"]:
        parts.append(f"{counts['skip']} skipped")
    text = ", ".join(parts)
    first_fail = next((c for c in report.checks if c.status == "fail"), None)
    first_warn = next((c for c in report.checks if c.status == "warn"), None)
    if first_fail:
        return f"{text}: first failure: {first_fail.title}"
    if first_warn:
        return f"{text}: {first_warn.title}"
    return f"{text}: all good"


def findings_summary(findings: Sequence[Finding]) -> str:
    if not findings:
        return "no known problem found"
    errors = sum(1 for f in findings if f.severity == "error")
    ids = ", ".join(f.id for f in findings)
    return f"{len(findings)} finding(s), {errors} error(s): {ids}"


# --------------------------------------------------------------------------- rich


def _doc_ref(doc: str) -> str:
    return f"{PLAYBOOK}#{doc}"


def _append_details(text: Text, evidence: Iterable[str], fix: str, doc: str,
                    *, bar: str = "") -> Text:
    """What a finding and a check both show under their title: the evidence (dim, each line
    behind `bar`), then the fix and the PLAYBOOK.md section when there is one."""
    for line in evidence:
        text.append(f"    {bar}{line}\n", style="dim")
    if fix:
        text.append("    fix: ", style="bold")
        text.append(f"{fix}\n")
    if doc:
        text.append(f"    see {_doc_ref(doc)}\n", style="dim")
    return text


def render_finding(finding: Finding) -> Text:
    text = Text()
    text.append(f"{finding.severity.upper():7} ", style=_SEVERITY_STYLE[finding.severity])
    text.append(finding.id, style="bold")
    text.append(f"  {finding.title}\n")
    return _append_details(text, finding.evidence, finding.fix, finding.doc, bar="│ ")


def render_findings(findings: Sequence[Finding]) -> Group:
    """`diagnose`'s human output: each finding, then a one-line summary."""
    parts = [render_finding(f) for f in findings]
    parts.append(Text(findings_summary(findings), style="bold"))
    return Group(*parts)


def render_check(check: CheckResult) -> Text:
    """A check: its mark and title, its evidence; the fix and the doc only when it did not pass."""
    mark, style = _STATUS_STYLE[check.status]
    text = Text()
    text.append(f"{mark} ", style=style)
    text.append(check.title, style="bold" if check.status == "fail" else "")
    text.append("\n")
    advice = check.status in ("fail", "warn")
    return _append_details(text, check.evidence, check.fix if advice else "",
                           check.doc if advice else "")


def render_doctor(report: DoctorReport) -> Group:
    """doctor's human output: each check, the log findings, the summary."""
    parts: list[Any] = [render_check(c) for c in report.checks]
    if report.findings:
        parts.append(Text("\nFindings", style="bold underline"))
        parts.extend(render_finding(f) for f in report.findings)
    style = "bold red" if report.failed else "bold green"
    parts.append(Text(summary_line(report), style=style))
    return Group(*parts)


def print_rich(renderable: Any) -> None:
    """Print a rendering on stdout (no automatic highlighting: log lines print as they are)."""
    Console(highlight=False).print(renderable)
