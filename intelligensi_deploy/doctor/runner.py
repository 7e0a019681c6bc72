"""Running doctor's checks (`doctor.checks.CHECKS`) in order: a check whose prerequisite
failed, or was itself skipped for that reason, is skipped, saying which; an exception in a
check becomes its failure; every result is redacted; the findings of all checks are merged,
one per id, errors first."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from intelligensi_deploy.diagnosis.findings import SEVERITY_RANK, Finding, merge_by_id
from intelligensi_deploy.doctor.check_types import (
    Check,
    CheckResult,
    DoctorDeps,
    DoctorReport,
    Facts,
    make_result,
)
from intelligensi_deploy.doctor.checks import CHECKS
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.redact import redact


def run_checks(deps: DoctorDeps, checks: Sequence[Check] = CHECKS) -> DoctorReport:
    """Run `checks` in order; a check whose prerequisite failed (or was itself skipped for
    that reason) is skipped, saying which. Errors in a check become its failure."""
    facts = Facts()
    try:
        results = _run_all(deps, facts, checks)
    finally:
        _close(facts.host, facts.client)
    redacted = tuple(_redact_result(r, deps.environ) for r in results)
    return DoctorReport(redacted, tuple(_collect_findings(redacted)))


def _run_all(deps: DoctorDeps, facts: Facts, checks: Sequence[Check]) -> list[CheckResult]:
    results: dict[str, CheckResult] = {}
    titles = {c.id: c.title for c in checks}
    blocked: set[str] = set()
    for check in checks:
        failed_needs = [n for n in check.needs if n in blocked]
        if failed_needs:
            why = ", ".join(f"'{titles[n]}' ({results[n].status})" for n in failed_needs)
            results[check.id] = make_result(check.id, check.title, "skip",
                                            [f"skipped: needs {why}"])
            blocked.add(check.id)
            continue
        reason = _safe_not_applicable(check, deps, facts)
        if reason:
            results[check.id] = make_result(check.id, check.title, "skip", [reason])
            continue
        result = _run_one(check, deps, facts)
        results[check.id] = result
        if result.status == "fail":
            blocked.add(check.id)
    return list(results.values())


def _close(*resources: Any) -> None:
    """Close what the checks opened (the SSH connection, the API client); never raise."""
    for resource in resources:
        close = getattr(resource, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):  # closing is best effort
                close()


def _safe_not_applicable(check: Check, deps: DoctorDeps, facts: Facts) -> str | None:
    try:
        return check.not_applicable(deps, facts)
    except Exception:  # noqa: BLE001 - an unanswerable question means "run it"
        return None


def _run_one(check: Check, deps: DoctorDeps, facts: Facts) -> CheckResult:
    try:
        return check.run(deps, facts)
    except FluxdeployError as exc:
        return make_result(check.id, check.title, "fail", [exc.message], fix=exc.fix or "",
                           doc=exc.doc or "")
    except Exception as exc:  # noqa: BLE001 - doctor reports, it does not crash
        return make_result(check.id, check.title, "fail", [f"{type(exc).__name__}: {exc}"],
                           doc="golden-rule")


def _collect_findings(results: Iterable[CheckResult]) -> list[Finding]:
    """The findings of all checks, one per id (with every check's evidence), errors first."""
    merged = merge_by_id(f for result in results for f in result.findings)
    return sorted(merged, key=lambda f: SEVERITY_RANK[f.severity])


def _redact_result(result: CheckResult, environ: Mapping[str, str]) -> CheckResult:
    def clean(text: str) -> str:
        return redact(text, environ=environ or None)

    findings = tuple(Finding(f.id, f.severity, f.title, tuple(clean(e) for e in f.evidence),
                             f.fix, f.doc) for f in result.findings)
    return CheckResult(result.id, result.title, result.status,
                       tuple(clean(e) for e in result.evidence), clean(result.fix), result.doc,
                       findings)
