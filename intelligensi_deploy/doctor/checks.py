"""doctor's ordered checks: the logs-first playbook walked for the user. READ-ONLY.

Each check is a small function over injected dependencies (`DoctorDeps`) and the facts the
earlier checks gathered (`Facts`); it returns a `CheckResult` (pass, warn, fail or skip, with
evidence, a fix and a PLAYBOOK.md anchor). `run_checks` runs them in order and skips a check
whose prerequisite failed, saying which. Nothing here restarts, removes or changes anything:
the only commands run are `true`, `docker version` / `info` / `inspect` / `logs`, `nvidia-smi -L`,
and HTTP GETs of `/health` and `/ready`; the Lambda API is only read.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from intelligensi_deploy.doctor.diagnose import diagnose
from intelligensi_deploy.doctor.exposure import NO_FIREWALL_REGIONS, external_cause
from intelligensi_deploy.doctor.findings import SEVERITY_RANK, Finding, make_finding
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.redact import redact, secret_values

Status = Literal["pass", "warn", "fail", "skip"]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check. `findings` are diagnoses the check made along the way."""

    id: str
    title: str
    status: Status
    evidence: tuple[str, ...] = ()
    fix: str = ""
    doc: str = ""
    findings: tuple[Finding, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "status": self.status,
                "evidence": list(self.evidence), "fix": self.fix, "doc": self.doc}


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: Any = None  # the parsed JSON body, or None


HttpGet = Callable[[str, float], HttpAnswer]  # (url, timeout) -> answer; raises when no answer


class DockerLike(Protocol):
    """What doctor needs of `remote.docker.Docker` (read-only calls only)."""

    def run_docker(self, args: Sequence[str], *, timeout: float | None = None) -> Any: ...
    def inspect(self, name: str) -> dict[str, Any] | None: ...
    def logs(self, name: str, *, tail: int | None = None) -> str: ...


@dataclass
class DoctorDeps:
    """Everything doctor touches, injected so the checks run against fakes in tests.

    `connect` opens the deployment's Host (SSH with the pinned host key, or this machine);
    `lambda_client` makes a LambdaClient (raising FluxdeployError without a key);
    `http_get` does one GET with a timeout.
    """

    deployment: Any                                   # state.Deployment
    load_preset: Callable[[str], Any]                 # presets.load_preset
    connect: Callable[[], Any]                        # -> remote.host.Host
    docker_for: Callable[[Any], DockerLike]           # Host -> Docker
    http_get: HttpGet
    lambda_client: Callable[[], Any] | None = None    # -> cloud.lambda_api.LambdaClient
    build_log: Callable[[], str | None] | None = None  # the last failed build's record
    environ: Mapping[str, str] = field(default_factory=dict)
    log_tail: int = 200
    local_timeout: float = 5.0
    external_timeout: float = 3.0


@dataclass
class Facts:
    """What the checks found so far, for the checks after them."""

    preset: Any = None
    client: Any = None
    instances: dict[str, Any] = field(default_factory=dict)
    instance: Any = None
    host: Any = None
    docker: DockerLike | None = None
    docker_info: dict[str, Any] = field(default_factory=dict)
    container: dict[str, Any] | None = None
    log_findings: list[Finding] = field(default_factory=list)


CheckFn = Callable[[DoctorDeps, Facts], CheckResult]
NotApplicable = Callable[[DoctorDeps, Facts], str | None]


@dataclass(frozen=True)
class Check:
    """A check, the checks it needs to have passed, and when it does not apply at all."""

    id: str
    title: str
    run: CheckFn
    needs: tuple[str, ...] = ()
    not_applicable: NotApplicable = lambda deps, facts: None


@dataclass(frozen=True)
class DoctorReport:
    checks: tuple[CheckResult, ...]
    findings: tuple[Finding, ...]

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)


# --------------------------------------------------------------------------- helpers


def _result(check_id: str, title: str, status: Status, evidence: Iterable[str] = (),
            fix: str = "", doc: str = "", findings: Iterable[Finding] = ()) -> CheckResult:
    return CheckResult(check_id, title, status, tuple(evidence), fix, doc, tuple(findings))


def tunnel_command(deployment_name: str) -> str:
    return f"fluxdeploy tunnel --name {deployment_name}"


def _container_name(deps: DoctorDeps) -> str:
    dep = deps.deployment
    return dep.container_name or f"fluxdeploy-{dep.name}"


def _token_values(deps: DoctorDeps) -> list[str]:
    return secret_values(deps.environ or None)


def _provider(deps: DoctorDeps) -> str:
    return str(deps.deployment.provider)


def _deployed_port(deps: DoctorDeps, facts: Facts) -> int:
    """The port the container was deployed with (the state), else the preset's."""
    return int(deps.deployment.port or facts.preset.port)


def _only_lambda(deps: DoctorDeps, facts: Facts) -> str | None:
    return None if _provider(deps) == "lambda" else f"provider {_provider(deps)}: no Lambda API"


# --------------------------------------------------------------------------- 1. local


def check_preset(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """The deployment's preset still loads and validates."""
    title = "Preset is valid"
    facts.preset = deps.load_preset(deps.deployment.preset)
    p = facts.preset
    return _result("preset", title, "pass", [
        f"preset {p.name}: provider {p.provider}, image {p.image}",
        (f"model {p.server.model}, memory {p.server.memory}, quant {p.server.quant}, "
        f"port {p.port}, exposure {p.exposure}"),
    ])


def check_tokens(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """Which token variables are set (names only); a gated model without an HF token warns."""
    from intelligensi_deploy import secrets
    from intelligensi_deploy.presets import GATED_MODELS

    title = "Tokens in the environment (names only)"
    present = secrets.present_token_names(deps.environ)
    evidence = [f"set: {', '.join(present) if present else 'none'}"]
    model = facts.preset.server.model
    if model in GATED_MODELS and secrets.hf_token(deps.environ) is None:
        return _result("tokens", title, "warn", evidence + [f"{model} is gated: no HF_TOKEN"],
                       fix="export HF_TOKEN=<token with access to the model> and run "
                       "`fluxdeploy up` again (the container reads it from its env file).",
                       doc="hf-auth")
    if str(facts.preset.image).startswith("ghcr.io/") and not secrets.ghcr_token(deps.environ):
        evidence.append("no GHCR_TOKEN: pulls from ghcr.io work only for a public image")
    return _result("tokens", title, "pass", evidence)


def check_lambda_key(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """The Lambda API key is set and accepted (one read-only call)."""
    title = "Lambda API key is accepted"
    if deps.lambda_client is None:
        return _result("lambda-key", title, "fail", ["no Lambda client available"],
                       fix="export LAMBDA_API_KEY=<key from https://cloud.lambda.ai/api-keys>",
                       doc="lambda-api-key")
    facts.client = deps.lambda_client()
    instances = facts.client.list_instances()
    facts.instances = {i.id: i for i in instances}
    return _result("lambda-key", title, "pass",
                   [f"the API answered: {len(instances)} instance(s) in the account"])


def check_instance(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """The instance exists and is `active`, at the address the state remembers."""
    title = "Instance is active"
    dep = deps.deployment
    if not dep.instance_id:
        return _result("instance", title, "fail", ["the deployment has no instance id"],
                       fix="Run `fluxdeploy up` to launch (or resume) it.", doc="lambda-boot")
    try:
        inst = facts.instances.get(dep.instance_id) or facts.client.get_instance(dep.instance_id)
    except FluxdeployError as exc:
        if getattr(exc, "code", None) != "global/object-does-not-exist":
            raise
        return _result("instance", title, "fail",
                       [f"instance {dep.instance_id} no longer exists (terminated?)"],
                       fix="`fluxdeploy down` to forget it, then `fluxdeploy up`.",
                       doc="lambda-boot")
    facts.instance = inst
    evidence = [(f"instance {inst.id}: {inst.status}, ip {inst.ip or 'none yet'}, "
                f"region {inst.region}, type {inst.instance_type}")]
    if dep.ip and inst.ip and dep.ip != inst.ip:
        evidence.append(f"the state remembers ip {dep.ip}, the API says {inst.ip}")
    if inst.status == "active":
        return _result("instance", title, "pass", evidence)
    if inst.status == "booting":
        return _result("instance", title, "warn", evidence,
                       fix="Wait: boot takes minutes (8-GPU machines up to ~25 min).",
                       doc="lambda-boot")
    return _result("instance", title, "fail", evidence,
                   fix="The VM is gone or broken: `fluxdeploy down`, then `fluxdeploy up`.",
                   doc="lambda-boot")


# --------------------------------------------------------------------------- 3-5. host


def check_host(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """SSH reaches the VM with the pinned host key (or, provider local, this machine)."""
    title = "SSH reaches the host (pinned host key)"
    dep = deps.deployment
    facts.host = deps.connect()
    result = facts.host.run(["true"], timeout=30)
    label = getattr(facts.host, "label", "host")
    if not result.ok:
        return _result("ssh", title, "fail", [f"`true` on {label} exited {result.returncode}"],
                       fix="Check the SSH user and key in the preset.", doc="ssh-auth")
    if _provider(deps) == "local":
        return _result("ssh", "Host", "pass", ["this machine (provider local: no SSH)"])
    if not dep.host_key:
        return _result("ssh", title, "warn", [f"{label} answered",
                                               "no host key is pinned for this deployment"],
                       fix="Run `fluxdeploy up` once more to pin the host key.",
                       doc="ssh-host-key-changed")
    return _result("ssh", title, "pass",
                   [f"{label} answered with the pinned host key {dep.host_key.split()[0]}"])


def check_docker(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """The Docker daemon on the host answers."""
    title = "Docker daemon answers"
    facts.docker = deps.docker_for(facts.host)
    result = facts.docker.run_docker(["info", "--format", "{{json .}}"], timeout=30)
    if not result.ok:
        return _result("docker", title, "fail", _tail(result.output, 3),
                       fix="Start Docker on the host (`sudo systemctl start docker`).",
                       doc="docker-daemon")
    try:
        facts.docker_info = json.loads(result.stdout or "{}")
    except ValueError:
        facts.docker_info = {}
    info = facts.docker_info
    runtimes = ", ".join(sorted(info.get("Runtimes") or {})) or "unknown"
    return _result("docker", title, "pass",
                   [f"Docker {info.get('ServerVersion', '?')} (runtimes: {runtimes})"])


def _gpu_not_needed(deps: DoctorDeps, facts: Facts) -> str | None:
    return None if getattr(facts.preset, "gpus", True) else "the preset runs on CPU (gpus: false)"


def check_gpu(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """The NVIDIA driver answers on the host and Docker has the NVIDIA runtime."""
    title = "GPU visible to containers"
    smi = facts.host.run(["nvidia-smi", "-L"], timeout=30)
    gpus = [line for line in smi.stdout.splitlines() if line.startswith("GPU ")]
    runtimes = set(facts.docker_info.get("Runtimes") or {})
    cdi = json.dumps(facts.docker_info.get("DiscoveredDevices") or [])
    evidence = gpus or _tail(smi.output, 2) or [f"`nvidia-smi -L` exited {smi.returncode}"]
    if not smi.ok or not gpus:
        return _result("gpu", title, "fail", evidence,
                       fix="The host has no working NVIDIA driver: use a GPU instance image "
                       "(Lambda Stack) or install the driver.", doc="nvidia-runtime",
                       findings=[make_finding("nvidia-runtime", evidence)])
    if "nvidia" not in runtimes and "nvidia.com/gpu" not in cdi:
        evidence = [*gpus, f"Docker runtimes: {', '.join(sorted(runtimes)) or 'none'}"]
        return _result("gpu", title, "fail", evidence,
                       fix=make_finding("nvidia-runtime").fix, doc="nvidia-runtime",
                       findings=[make_finding("nvidia-runtime", evidence)])
    return _result("gpu", title, "pass", [*gpus, "Docker has the nvidia runtime"])


def _image_not_bundled(deps: DoctorDeps, facts: Facts) -> str | None:
    from intelligensi_deploy.doctor.image_check import not_bundled

    return not_bundled(deps, facts)


def check_image(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """`image: bundled`: the build on the host succeeded (doctor/image_check.py)."""
    from intelligensi_deploy.doctor.image_check import check_bundled_image

    return check_bundled_image(deps, facts)


# --------------------------------------------------------------------------- 5-6. container


def describe_container(inspect: Mapping[str, Any]) -> list[str]:
    """Evidence lines from `docker inspect`: state, exit code, OOMKilled, restarts, error."""
    state = inspect.get("State") or {}
    lines = [(f"status {state.get('Status', '?')}, exit code {state.get('ExitCode')}, "
             f"OOMKilled {str(bool(state.get('OOMKilled'))).lower()}, "
             f"restarts {inspect.get('RestartCount', 0)}")]
    if state.get("Error"):
        lines.append(f"docker: {state['Error']}")
    if state.get("StartedAt") and not str(state["StartedAt"]).startswith("0001-"):
        lines.append(f"started {state['StartedAt']}")
    return lines


def check_container(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """The container runs (not restarting, not exited); OOMKilled and exit codes are named."""
    title = "Container is running"
    name = _container_name(deps)
    facts.container = facts.docker.inspect(name)
    if facts.container is None:
        return _result("container", title, "fail", [f"no container named {name}"],
                       fix="Run `fluxdeploy up` to start it.", doc="docker-run")
    inspect = facts.container
    state = inspect.get("State") or {}
    evidence = [f"{name}: " + describe_container(inspect)[0], *describe_container(inspect)[1:]]
    findings = diagnose(str(state.get("Error") or ""), secrets=_token_values(deps))
    restarts = int(inspect.get("RestartCount") or 0)
    exit_code = state.get("ExitCode")
    if state.get("OOMKilled"):
        findings.append(make_finding("oom-killed", evidence[:1]))
    elif exit_code == 137 and not state.get("Running"):
        findings.append(make_finding("oom-killed", evidence[:1], severity="warning"))
    if state.get("Running") and not state.get("Restarting"):
        if restarts:
            return _result("container", title, "warn", evidence,
                           fix="It crashed and was restarted: read the logs check below.",
                           doc="container-crash", findings=findings)
        return _result("container", title, "pass", evidence, findings=findings)
    doc = findings[0].doc if findings else "container-crash"
    if state.get("Restarting"):
        what = "Container is restarting (crash loop)"
    elif state.get("Status") == "created":
        what = "Container was created but could not start"
    else:
        what = f"Container exited ({exit_code})"
    return _result("container", what, "fail", evidence,
                   fix=(findings[0].fix if findings else "Read the logs check below.")
                   + " Logs first; redeploy last.", doc=doc, findings=findings)


def check_logs(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """Logs first: the last lines of the container log through the diagnosis."""
    title = f"Container log (last {deps.log_tail} lines) diagnosed"
    if facts.container is None:
        return _result("logs", title, "skip", ["skipped: there is no container to read"])
    text = facts.docker.logs(_container_name(deps), tail=deps.log_tail)
    findings = diagnose(text, secrets=_token_values(deps))
    facts.log_findings = findings
    if not findings:
        count = len([line for line in text.splitlines() if line.strip()])
        return _result("logs", title, "pass", [f"{count} lines, no known problem"])
    evidence = [f"{f.id}: {f.evidence[0] if f.evidence else f.title}" for f in findings]
    worst = findings[0]
    status: Status = {"error": "fail", "warning": "warn"}.get(worst.severity, "pass")
    if status != "pass":
        title = f"Container log: {worst.title}"
    return _result("logs", title, status, evidence, fix=worst.fix, doc=worst.doc,
                   findings=findings)


# --------------------------------------------------------------------------- 7-8. HTTP


def _get_on_host(deps: DoctorDeps, facts: Facts, path: str) -> HttpAnswer:
    with facts.host.forward(_deployed_port(deps, facts)) as local_port:
        return deps.http_get(f"http://127.0.0.1:{local_port}{path}", deps.local_timeout)


def check_health(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """`/health` answers 200 on the host's 127.0.0.1 (through SSH: no firewall involved)."""
    title = "/health answers on the host"
    try:
        answer = _get_on_host(deps, facts, "/health")
    except FluxdeployError:
        raise  # SSH trouble: reported as such by the runner
    except Exception as exc:  # noqa: BLE001 - no answer is the finding
        return _health_failed(deps, facts, title, f"no answer: {type(exc).__name__}: {exc}")
    if answer.status == 200:
        return _result("health", title, "pass", [f"HTTP 200 {json.dumps(answer.body)}"])
    return _health_failed(deps, facts, title, f"HTTP {answer.status}")


def _health_failed(deps: DoctorDeps, facts: Facts, title: str, what: str) -> CheckResult:
    loopback = [f for f in facts.log_findings if f.id == "bound-to-loopback"]
    if loopback:
        return _result("health", title, "fail", [what, *loopback[0].evidence],
                       fix=loopback[0].fix, doc="bound-to-loopback")
    return _result("health", title, "fail", [what],
                   fix="The process does not serve: read the logs check above.",
                   doc="health-and-ready")


def check_ready(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """`/ready` and the phase it reports; still loading is a warning, never a reason to redeploy."""
    from intelligensi_deploy.health import ReadyStatus

    title = "/ready: the model is loaded"
    try:
        answer = _get_on_host(deps, facts, "/ready")
    except Exception as exc:  # noqa: BLE001
        return _result("ready", title, "fail", [f"no answer: {type(exc).__name__}"],
                       doc="health-and-ready")
    status = ReadyStatus.parse(answer.status, answer.body)
    said = status.state if status.failed else status.describe()
    evidence = [f"HTTP {answer.status}: {said} after {status.elapsed_s:.0f} s"]
    if status.ready:
        return _result("ready", title, "pass", evidence)
    if status.loading:
        finding = make_finding("still-loading", evidence)
        return _result("ready", "Model is still loading", "warn", evidence,
                       fix="Do not redeploy: a restart starts the download over. Wait and watch "
                       "`fluxdeploy status`.", doc="still-loading", findings=[finding])
    if status.failed:
        err = status.error or {}
        reason = f"{err.get('type', 'error')}: {err.get('message', '')}"
        known = diagnose(reason, secrets=_token_values(deps))
        evidence.append("error: " + reason.strip().splitlines()[0])
        return _result("ready", "Model failed to load", "fail", evidence,
                       fix=str(err.get("hint") or (known[0].fix if known else "")),
                       doc=known[0].doc if known else "health-and-ready")
    return _result("ready", title, "fail", evidence, doc="health-and-ready")


# --------------------------------------------------------------------------- 9-10. outside


def _external_not_applicable(deps: DoctorDeps, facts: Facts) -> str | None:
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
    url = f"http://{ip}:{port}/health"
    try:
        answer = deps.http_get(url, deps.external_timeout)
        if answer.status == 200:
            return _result("external", title, "pass", [f"{url}: HTTP 200"])
        seen = f"{url}: HTTP {answer.status}"
    except Exception as exc:  # noqa: BLE001 - no answer is the finding
        seen = f"{url}: no answer within {deps.external_timeout:.0f} s ({type(exc).__name__})"
    rules = None
    region = getattr(facts.instance, "region", None) or deps.deployment.region
    if facts.client is not None and region not in NO_FIREWALL_REGIONS:
        rules = facts.client.firewall_rules()
    cause = external_cause(facts.container or {}, facts.log_findings, rules, region, port,
                           tunnel_command(deps.deployment.name))
    return _result("external", title, "fail", [seen, *cause.evidence], fix=cause.fix,
                   doc=cause.doc, findings=cause.findings)


# --------------------------------------------------------------------------- running


CHECKS: tuple[Check, ...] = (
    Check("preset", "Preset is valid", check_preset),
    Check("tokens", "Tokens in the environment (names only)", check_tokens, needs=("preset",)),
    Check("lambda-key", "Lambda API key is accepted", check_lambda_key,
          not_applicable=_only_lambda),
    Check("instance", "Instance is active", check_instance, needs=("lambda-key",),
          not_applicable=_only_lambda),
    Check("ssh", "SSH reaches the host (pinned host key)", check_host, needs=("instance",)),
    Check("docker", "Docker daemon answers", check_docker, needs=("ssh",)),
    Check("gpu", "GPU visible to containers", check_gpu, needs=("docker", "preset"),
          not_applicable=_gpu_not_needed),
    Check("image", "Bundled image built on the host", check_image, needs=("docker",),
          not_applicable=_image_not_bundled),
    Check("container", "Container is running", check_container, needs=("docker",)),
    Check("logs", "Container log diagnosed", check_logs, needs=("docker",)),
    Check("health", "/health answers on the host", check_health, needs=("container", "preset")),
    Check("ready", "/ready: the model is loaded", check_ready, needs=("health",)),
    Check("external", "Port reachable from here at the public IP", check_external,
          needs=("health", "preset"), not_applicable=_external_not_applicable),
)


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
            results[check.id] = _result(check.id, check.title, "skip",
                                        [f"skipped: needs {why}"])
            blocked.add(check.id)
            continue
        reason = _safe_not_applicable(check, deps, facts)
        if reason:
            results[check.id] = _result(check.id, check.title, "skip", [reason])
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
        return _result(check.id, check.title, "fail", [exc.message], fix=exc.fix or "",
                       doc=exc.doc or "")
    except Exception as exc:  # noqa: BLE001 - doctor reports, it does not crash
        return _result(check.id, check.title, "fail", [f"{type(exc).__name__}: {exc}"],
                       doc="golden-rule")


def _collect_findings(results: Iterable[CheckResult]) -> list[Finding]:
    """The findings of all checks, one per id, errors first."""
    by_id: dict[str, Finding] = {}
    for result in results:
        for f in result.findings:
            seen = by_id.get(f.id)
            if seen is None or SEVERITY_RANK[f.severity] < SEVERITY_RANK[seen.severity]:
                by_id[f.id] = f
    return sorted(by_id.values(), key=lambda f: SEVERITY_RANK[f.severity])


def _redact_result(result: CheckResult, environ: Mapping[str, str]) -> CheckResult:
    def clean(text: str) -> str:
        return redact(text, environ=environ or None)

    findings = tuple(Finding(f.id, f.severity, f.title, tuple(clean(e) for e in f.evidence),
                             f.fix, f.doc) for f in result.findings)
    return CheckResult(result.id, result.title, result.status,
                       tuple(clean(e) for e in result.evidence), clean(result.fix), result.doc,
                       findings)


def _tail(text: str, lines: int) -> list[str]:
    return [line for line in text.strip().splitlines() if line.strip()][-lines:]
