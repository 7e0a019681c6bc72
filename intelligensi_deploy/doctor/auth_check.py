"""doctor's `auth` check: does the server take this machine's API key, and refuse a request
without one? An API route (`/model-status`) is asked twice on the host's loopback, through
SSH, so that the firewall plays no part. Read-only: two GETs."""

from __future__ import annotations

from intelligensi_deploy.diagnosis.findings import make_finding
from intelligensi_deploy.doctor.check_types import CheckResult, DoctorDeps, Facts, make_result
from intelligensi_deploy.doctor.http_checks import get_on_host_keyed

PROBE_PATH = "/model-status"


def auth_not_applicable(deps: DoctorDeps, facts: Facts) -> str | None:
    dep = deps.deployment
    if dep.auth or dep.exposure == "public":
        return None
    return ("exposure tunnel without `auth: true`: the port is reachable through SSH only, "
            "and the server checks no key")


def check_auth(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """Without a key: 401. With this machine's key: anything but 401."""
    title = "API key: required, and this machine's is taken"
    dep = deps.deployment
    without = get_on_host_keyed(deps, facts, PROBE_PATH, None)
    seen = [f"{PROBE_PATH} without a key: HTTP {without.status}"]
    if without.status != 401:
        finding = make_finding("open-endpoint", seen)
        if dep.exposure == "public":
            return make_result("auth", "The public endpoint answers without an API key", "fail",
                               seen, fix=finding.fix, doc=finding.doc, findings=[finding])
        return make_result("auth", "The server answers without an API key", "warn", seen,
                           fix=finding.fix, doc=finding.doc)
    key = deps.api_key() if deps.api_key else None
    if key is None:
        return make_result("auth", "This machine holds no API key for the deployment", "warn",
                           seen, fix="Copy the key file from the machine that ran `up`, or "
                           "`fluxdeploy key rotate` (the old key stops working).",
                           doc="api-keys")
    with_key = get_on_host_keyed(deps, facts, PROBE_PATH, key)
    seen.append(f"{PROBE_PATH} with this machine's key: HTTP {with_key.status}")
    if with_key.status == 401:
        finding = make_finding("key-refused", seen)
        return make_result("auth", finding.title, "fail", seen, fix=finding.fix,
                           doc=finding.doc, findings=[finding])
    return make_result("auth", title, "pass", seen)
