"""doctor's HTTP checks: `/health` and `/ready` on the host's loopback (through SSH, no
firewall involved), then the serving port from here at the public address. Read-only: GETs."""

from __future__ import annotations

import json

from intelligensi_deploy.cloud.rulesets import find_ruleset
from intelligensi_deploy.diagnosis.diagnose import diagnose
from intelligensi_deploy.diagnosis.exposure import NO_FIREWALL_REGIONS, external_cause
from intelligensi_deploy.diagnosis.findings import make_finding
from intelligensi_deploy.doctor.check_types import (
    CheckResult,
    DoctorDeps,
    Facts,
    HttpAnswer,
    make_result,
)
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.health import ReadyStatus
from intelligensi_deploy.redact import secret_values


def tunnel_command(deployment_name: str) -> str:
    return f"fluxdeploy tunnel --name {deployment_name}"


def _provider(deps: DoctorDeps) -> str:
    return str(deps.deployment.provider)


def _deployed_port(deps: DoctorDeps, facts: Facts) -> int:
    """The port the container was deployed with (the state), else the preset's."""
    return int(deps.deployment.port or facts.need_preset().port)


def get_on_host(deps: DoctorDeps, facts: Facts, path: str) -> HttpAnswer:
    """GET `path` on the host's 127.0.0.1 at the deployed port, through the host's tunnel."""
    with facts.need_host().forward(_deployed_port(deps, facts)) as local_port:
        return deps.http_get(f"{_scheme(deps)}://127.0.0.1:{local_port}{path}",
                             deps.local_timeout)


def get_on_host_keyed(deps: DoctorDeps, facts: Facts, path: str, key: str | None
                      ) -> HttpAnswer:
    """`get_on_host` for an API route: with `key` as the bearer key (None: no key)."""
    if deps.keyed_get is None:
        raise FluxdeployError("doctor was built without a keyed HTTP client")
    with facts.need_host().forward(_deployed_port(deps, facts)) as local_port:
        return deps.keyed_get(f"{_scheme(deps)}://127.0.0.1:{local_port}{path}",
                              deps.local_timeout, key)


def _scheme(deps: DoctorDeps) -> str:
    """HTTPS for a deployment with a pinned certificate (the real GETs trust only that)."""
    return "https" if deps.deployment.tls else "http"


def check_health(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """`/health` answers 200 on the host's 127.0.0.1 (through SSH: no firewall involved)."""
    title = "/health answers on the host"
    try:
        answer = get_on_host(deps, facts, "/health")
    except FluxdeployError:
        raise  # SSH trouble: reported as such by the runner
    except Exception as exc:  # noqa: BLE001 - no answer is the finding
        return _health_failed(deps, facts, title, f"no answer: {type(exc).__name__}: {exc}")
    if answer.status == 200:
        return make_result("health", title, "pass", [f"HTTP 200 {json.dumps(answer.body)}"])
    return _health_failed(deps, facts, title, f"HTTP {answer.status}")


def _health_failed(deps: DoctorDeps, facts: Facts, title: str, what: str) -> CheckResult:
    loopback = [f for f in facts.log_findings if f.id == "bound-to-loopback"]
    if loopback:
        return make_result("health", title, "fail", [what, *loopback[0].evidence],
                           fix=loopback[0].fix, doc="bound-to-loopback")
    return make_result("health", title, "fail", [what],
                       fix="The process does not serve: read the logs check above.",
                       doc="health-and-ready")


def check_ready(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """`/ready` and the phase it reports; still loading is a warning, never a reason to redeploy."""
    title = "/ready: the model is loaded"
    try:
        answer = get_on_host(deps, facts, "/ready")
    except Exception as exc:  # noqa: BLE001
        return make_result("ready", title, "fail", [f"no answer: {type(exc).__name__}"],
                           doc="health-and-ready")
    status = ReadyStatus.parse(answer.status, answer.body)
    said = status.state if status.failed else status.describe()
    # the phases' sum: the time the load took (elapsed_s counts since the server started)
    took = sum(status.phases.values()) if status.ready and status.phases else status.elapsed_s
    evidence = [f"HTTP {answer.status}: {said} after {took:.0f} s"]
    if status.ready:
        return make_result("ready", title, "pass", evidence)
    if status.loading:
        finding = make_finding("still-loading", evidence)
        return make_result("ready", "Model is still loading", "warn", evidence,
                           fix="Do not redeploy: a restart starts the download over. Wait and "
                           "watch `fluxdeploy status`.", doc="still-loading", findings=[finding])
    if status.failed:
        err = status.error or {}
        reason = f"{err.get('type', 'error')}: {err.get('message', '')}"
        known = diagnose(reason, secrets=secret_values(deps.environ or None))
        evidence.append("error: " + reason.strip().splitlines()[0])
        return make_result("ready", "Model failed to load", "fail", evidence,
                           fix=str(err.get("hint") or (known[0].fix if known else "")),
                           doc=known[0].doc if known else "health-and-ready")
    return make_result("ready", title, "fail", evidence, doc="health-and-ready")


# --------------------------------------------------------------------------- 9-10. outside


def external_not_applicable(deps: DoctorDeps, facts: Facts) -> str | None:
    if _provider(deps) == "local":
        return "provider local: no public address"
    wanted = {deps.deployment.exposure, getattr(facts.preset, "exposure", None)}
    if "public" not in wanted:
        return ("exposure tunnel: the port is published on the host's 127.0.0.1 only, by "
                f"design; reach it with `{tunnel_command(deps.deployment.name)}`")
    return None


def check_external(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """The port from this machine at the public IP; on failure, which cause it is."""
    title = "Port reachable from here at the public IP"
    ip = getattr(facts.instance, "ip", None) or deps.deployment.ip
    port = _deployed_port(deps, facts)
    url = f"{_scheme(deps)}://{ip}:{port}/health"
    try:
        answer = deps.http_get(url, deps.external_timeout)
        if answer.status == 200:
            return make_result("external", title, "pass", [f"{url}: HTTP 200"])
        seen = f"{url}: HTTP {answer.status}"
    except Exception as exc:  # noqa: BLE001 - no answer is the finding
        seen = f"{url}: no answer within {deps.external_timeout:.0f} s ({type(exc).__name__})"
    rules = None
    region = getattr(facts.instance, "region", None) or deps.deployment.region
    ruleset_id = deps.deployment.firewall_ruleset_id
    if facts.client is not None and ruleset_id:  # the deployment's own ruleset
        ruleset = find_ruleset(facts.client, ruleset_id)
        rules = list(ruleset.rules) if ruleset is not None else []
    elif facts.client is not None and region not in NO_FIREWALL_REGIONS:
        rules = facts.client.firewall_rules()  # an older record: the legacy account rules
    cause = external_cause(facts.container or {}, facts.log_findings, rules, region, port,
                           tunnel_command(deps.deployment.name), ruleset=ruleset_id)
    return make_result("external", title, "fail", [seen, *cause.evidence], fix=cause.fix,
                       doc=cause.doc, findings=cause.findings)
