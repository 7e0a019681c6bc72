"""doctor's `tls` check: the certificate the server presents on its port (read through the
SSH forward, so the firewall plays no part) is the pinned one, and is not about to expire.
Read-only: one TLS handshake, no request."""

from __future__ import annotations

from intelligensi_deploy.diagnosis.findings import make_finding
from intelligensi_deploy.doctor.check_types import CheckResult, DoctorDeps, Facts, make_result

EXPIRY_WARNING_S = 14 * 86400


def tls_not_applicable(deps: DoctorDeps, facts: Facts) -> str | None:
    dep = deps.deployment
    if dep.tls is not None or dep.exposure == "public":
        return None
    return "plain HTTP (exposure tunnel): the SSH tunnel encrypts the traffic"


def check_tls(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """The presented certificate's fingerprint against the pin, and the days it has left."""
    dep = deps.deployment
    title = "TLS: the server presents the pinned certificate"
    if dep.tls is None:
        return make_result("tls", "The public endpoint has no pinned certificate", "warn",
                           ["the record pins no certificate (a deployment made before TLS)"],
                           fix="`fluxdeploy up --force` serves it over HTTPS with a pinned "
                           "certificate.", doc="tls")
    if deps.peer_fingerprint is None:
        return make_result("tls", title, "skip", ["no TLS client in this doctor"])
    with facts.need_host().forward(int(dep.port)) as local_port:
        seen = deps.peer_fingerprint("127.0.0.1", local_port)
    evidence = [f"pinned: {dep.tls.fingerprint}", f"presented: {seen or 'no TLS handshake'}"]
    if seen != dep.tls.fingerprint:
        finding = make_finding("cert-changed", evidence)
        return make_result("tls", finding.title, "fail", evidence, fix=finding.fix,
                           doc=finding.doc, findings=[finding])
    left = (dep.tls_expires_at or 0.0) - deps.clock()
    evidence.append(f"expires in {left / 86400:.0f} days" if left > 0 else "expired")
    if left < EXPIRY_WARNING_S:
        finding = make_finding("cert-expiring", evidence)
        return make_result("tls", finding.title, "warn", evidence, fix=finding.fix,
                           doc=finding.doc, findings=[finding])
    return make_result("tls", title, "pass", evidence)
