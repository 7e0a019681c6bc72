"""doctor's ordered checks: the logs-first playbook walked for the user. READ-ONLY.

Each check is a small function over injected dependencies (`DoctorDeps`) and the facts the
earlier checks gathered (`Facts`); it returns a `CheckResult` (pass, warn, fail or skip, with
evidence, a fix and a PLAYBOOK.md anchor). `CHECKS` is their order; `doctor.runner.run_checks`
runs them, skipping a check whose prerequisite failed. Nothing here restarts, removes or
changes anything: the only commands run are `true`, `docker version` / `info` / `inspect` /
`logs` / `top`, `nvidia-smi -L` and its two memory queries, and HTTP GETs of `/health` and
`/ready`; the Lambda API is only read.
The HTTP, cluster and image checks live in their own modules and are registered here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from intelligensi_deploy import secrets
from intelligensi_deploy.diagnosis.diagnose import diagnose
from intelligensi_deploy.diagnosis.findings import make_finding
from intelligensi_deploy.diagnosis.gpu_memory import point_oom_at, stop_fix
from intelligensi_deploy.doctor.account_check import check_forgotten
from intelligensi_deploy.doctor.auth_check import auth_not_applicable, check_auth
from intelligensi_deploy.doctor.check_types import (
    Check,
    CheckResult,
    DoctorDeps,
    Facts,
    Status,
    make_result,
)
from intelligensi_deploy.doctor.cluster_check import check_cluster, not_a_cluster
from intelligensi_deploy.doctor.gpu_memory_check import read_gpu_memory
from intelligensi_deploy.doctor.http_checks import (
    check_external,
    check_health,
    check_ready,
    external_not_applicable,
)
from intelligensi_deploy.doctor.image_check import check_bundled_image, not_bundled
from intelligensi_deploy.doctor.tls_check import check_tls, tls_not_applicable
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.presets import GATED_MODELS
from intelligensi_deploy.redact import secret_values
from intelligensi_deploy.shell_lines import exec_line, image_shell_line

# --------------------------------------------------------------------------- helpers


def _container_name(deps: DoctorDeps) -> str:
    dep = deps.deployment
    return dep.container_name or f"fluxdeploy-{dep.name}"


def _token_values(deps: DoctorDeps) -> list[str]:
    return secret_values(deps.environ or None)


def _provider(deps: DoctorDeps) -> str:
    return str(deps.deployment.provider)


def _only_lambda(deps: DoctorDeps, facts: Facts) -> str | None:
    return None if _provider(deps) == "lambda" else f"provider {_provider(deps)}: no Lambda API"


# --------------------------------------------------------------------------- 1. local


def check_preset(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """The deployment's preset still loads and validates."""
    title = "Preset is valid"
    facts.preset = deps.load_preset(deps.deployment.preset)
    p = facts.preset
    return make_result("preset", title, "pass", [
        f"preset {p.name}: provider {p.provider}, image {p.image}",
        (f"model {p.server.model}, memory {p.server.memory}, quant {p.server.quant}, "
        f"port {p.port}, exposure {p.exposure}"),
    ])


def check_tokens(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """Which token variables are set (names only); a gated model without an HF token warns."""
    title = "Tokens in the environment (names only)"
    present = secrets.present_token_names(deps.environ)
    evidence = [f"set: {', '.join(present) if present else 'none'}"]
    preset = facts.need_preset()
    model = preset.server.model
    if model in GATED_MODELS and secrets.hf_token(deps.environ) is None:
        return make_result("tokens", title, "warn", evidence + [f"{model} is gated: no HF_TOKEN"],
                           fix="export HF_TOKEN=<token with access to the model> and run "
                           "`fluxdeploy up` again (the container reads it from its env file).",
                           doc="hf-auth")
    if str(preset.image).startswith("ghcr.io/") and not secrets.ghcr_token(deps.environ):
        evidence.append("no GHCR_TOKEN: pulls from ghcr.io work only for a public image")
    return make_result("tokens", title, "pass", evidence)


def check_lambda_key(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """The Lambda API key is set and accepted (one read-only call)."""
    title = "Lambda API key is accepted"
    if deps.lambda_client is None:
        return make_result("lambda-key", title, "fail", ["no Lambda client available"],
                           fix="export LAMBDA_API_KEY=<key from https://cloud.lambda.ai/api-keys>",
                           doc="lambda-api-key")
    facts.client = client = deps.lambda_client()
    instances = client.list_instances()
    facts.instances = {i.id: i for i in instances}
    return make_result("lambda-key", title, "pass",
                       [f"the API answered: {len(instances)} instance(s) in the account"])


def check_instance(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """The instance exists and is `active`, at the address the state remembers."""
    title = "Instance is active"
    dep = deps.deployment
    if not dep.instance_id:
        return make_result("instance", title, "fail", ["the deployment has no instance id"],
                           fix="Run `fluxdeploy up` to launch (or resume) it.", doc="lambda-boot")
    try:
        inst = (facts.instances.get(dep.instance_id)
                or facts.need_client().get_instance(dep.instance_id))
    except FluxdeployError as exc:
        if getattr(exc, "code", None) != "global/object-does-not-exist":
            raise
        return make_result("instance", title, "fail",
                           [f"instance {dep.instance_id} no longer exists (terminated?)"],
                           fix="`fluxdeploy down` to forget it, then `fluxdeploy up`.",
                           doc="lambda-boot")
    facts.instance = inst
    evidence = [(f"instance {inst.id}: {inst.status}, ip {inst.ip or 'none yet'}, "
                f"region {inst.region}, type {inst.instance_type}")]
    if dep.ip and inst.ip and dep.ip != inst.ip:
        evidence.append(f"the state remembers ip {dep.ip}, the API says {inst.ip}")
    if inst.status == "active":
        return make_result("instance", title, "pass", evidence)
    if inst.status == "booting":
        return make_result("instance", title, "warn", evidence,
                           fix="Wait: boot takes minutes (8-GPU machines up to ~25 min).",
                           doc="lambda-boot")
    return make_result("instance", title, "fail", evidence,
                       fix="The VM is gone or broken: `fluxdeploy down`, then `fluxdeploy up`.",
                       doc="lambda-boot")


# --------------------------------------------------------------------------- 3-5. host


def check_host(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """SSH reaches the VM with the pinned host key (or, provider local, this machine)."""
    title = "SSH reaches the host (pinned host key)"
    dep = deps.deployment
    facts.host = host = deps.connect()
    result = host.run(["true"], timeout=30)
    label = getattr(host, "label", "host")
    if not result.ok:
        return make_result("ssh", title, "fail", [f"`true` on {label} exited {result.returncode}"],
                           fix="Check the SSH user and key in the preset.", doc="ssh-auth")
    if _provider(deps) == "local":
        return make_result("ssh", "Host", "pass", ["this machine (provider local: no SSH)"])
    if not dep.host_key:
        return make_result("ssh", title, "warn", [f"{label} answered",
                                               "no host key is pinned for this deployment"],
                           fix="Run `fluxdeploy up` once more to pin the host key.",
                           doc="ssh-host-key-changed")
    return make_result("ssh", title, "pass",
                       [f"{label} answered with the pinned host key {dep.host_key.split()[0]}"])


def check_docker(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """The Docker daemon on the host answers."""
    title = "Docker daemon answers"
    facts.docker = docker = deps.docker_for(facts.need_host())
    result = docker.run_docker(["info", "--format", "{{json .}}"], timeout=30)
    if not result.ok:
        return make_result("docker", title, "fail", _tail(result.output, 3),
                           fix="Start Docker on the host (`sudo systemctl start docker`).",
                           doc="docker-daemon")
    try:
        facts.docker_info = json.loads(result.stdout or "{}")
    except ValueError:
        facts.docker_info = {}
    info = facts.docker_info
    runtimes = ", ".join(sorted(info.get("Runtimes") or {})) or "unknown"
    return make_result("docker", title, "pass",
                       [f"Docker {info.get('ServerVersion', '?')} (runtimes: {runtimes})"])


def _gpu_not_needed(deps: DoctorDeps, facts: Facts) -> str | None:
    return None if getattr(facts.preset, "gpus", True) else "the preset runs on CPU (gpus: false)"


def check_gpu(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """The NVIDIA driver answers on the host and Docker has the NVIDIA runtime."""
    title = "GPU visible to containers"
    smi = facts.need_host().run(["nvidia-smi", "-L"], timeout=30)
    gpus = [line for line in smi.stdout.splitlines() if line.startswith("GPU ")]
    runtimes = set(facts.docker_info.get("Runtimes") or {})
    cdi = json.dumps(facts.docker_info.get("DiscoveredDevices") or [])
    evidence = gpus or _tail(smi.output, 2) or [f"`nvidia-smi -L` exited {smi.returncode}"]
    if not smi.ok or not gpus:
        return make_result("gpu", title, "fail", evidence,
                           fix="The host has no working NVIDIA driver: use a GPU instance image "
                           "(Lambda Stack) or install the driver.", doc="nvidia-runtime",
                           findings=[make_finding("nvidia-runtime", evidence)])
    if "nvidia" not in runtimes and "nvidia.com/gpu" not in cdi:
        evidence = [*gpus, f"Docker runtimes: {', '.join(sorted(runtimes)) or 'none'}"]
        return make_result("gpu", title, "fail", evidence,
                           fix=make_finding("nvidia-runtime").fix, doc="nvidia-runtime",
                           findings=[make_finding("nvidia-runtime", evidence)])
    memory = read_gpu_memory(facts.need_host(), facts.need_docker(), _container_name(deps))
    facts.gpu_stale = memory.stale
    evidence = [*(memory.gpus or gpus), *memory.processes, "Docker has the nvidia runtime"]
    if memory.stale:  # the seed's fuser/lsof step: named, for cuda-oom below to point at
        return make_result("gpu", "GPU memory is held by a process outside the container",
                           "warn", evidence, fix=stop_fix(memory.stale), doc="cuda-oom")
    return make_result("gpu", title, "pass", evidence)


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
    facts.container = facts.need_docker().inspect(name)
    if facts.container is None:
        return make_result("container", title, "fail", [f"no container named {name}"],
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
            return make_result("container", title, "warn", evidence,
                               fix="It crashed and was restarted: read the logs check below.",
                               doc="container-crash", findings=findings)
        return make_result("container", title, "pass", evidence, findings=findings)
    if _stopped(state):  # `docker stop`, a reboot, a tidy-up: not a crash
        return _stopped_result(deps, facts, evidence, exit_code)
    doc = findings[0].doc if findings else "container-crash"
    if state.get("Restarting"):
        what = "Container is restarting (crash loop)"
    elif state.get("Status") == "created":
        what = "Container was created but could not start"
    else:
        what = f"Container exited ({exit_code})"
    image = str((inspect.get("Config") or {}).get("Image") or deps.deployment.image or "IMAGE")
    evidence.append("it does not stay up, so `exec` cannot enter it; run the image by hand: "
                    f"`{image_shell_line(deps.deployment.name, _provider(deps), image)}`")
    return make_result("container", what, "fail", evidence,
                       fix=(findings[0].fix if findings else "Read the logs check below.")
                       + " Logs first; redeploy last.", doc=doc, findings=findings)


# 0: the server's graceful shutdown on SIGTERM; 130/143: a signal that ended it unhandled
_STOP_EXIT_CODES = (0, 130, 143)
_GRACEFUL = ("Shutting down", "Finished server process", "Application shutdown complete")


def _stopped(state: Mapping[str, Any]) -> bool:
    return (state.get("Status") == "exited" and not state.get("OOMKilled")
            and state.get("ExitCode") in _STOP_EXIT_CODES)


def _stopped_result(deps: DoctorDeps, facts: Facts, evidence: list[str],
                    exit_code: Any) -> CheckResult:
    """A container that was stopped (exit 0 after uvicorn's graceful shutdown): named so,
    with `up` as the fix, instead of a crash that sends the user to read the logs."""
    dep = deps.deployment
    tail = [line.strip() for line in facts.need_docker().logs(
        _container_name(deps), tail=5).splitlines() if line.strip()]
    graceful = [line for line in tail if any(mark in line for mark in _GRACEFUL)]
    if graceful:
        last = graceful[-1]
        evidence = [*evidence, f"the log ends with the server's graceful shutdown: {last!r}"]
    return make_result(
        "container", f"Container is stopped (exit {exit_code}): it was stopped, not crashed",
        "fail", evidence,
        fix=f"Start it again with `fluxdeploy up --preset {dep.preset} --name {dep.name}` "
            "(a stop, a reboot or a tidy-up did this; `up` starts this same container when "
            "its configuration still matches, and the model cache is kept).",
        doc="container-stopped")


def check_logs(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """Logs first: the last lines of the container log through the diagnosis."""
    title = f"Container log (last {deps.log_tail} lines) diagnosed"
    if facts.container is None:
        return make_result("logs", title, "skip", ["skipped: there is no container to read"])
    text = facts.need_docker().logs(_container_name(deps), tail=deps.log_tail)
    findings = point_oom_at(diagnose(text, secrets=_token_values(deps)), facts.gpu_stale)
    if _stopped((facts.container or {}).get("State") or {}):  # loading ended with the stop
        findings = [f for f in findings if f.id != "still-loading"]
    facts.log_findings = findings
    if not findings:
        count = len([line for line in text.splitlines() if line.strip()])
        return make_result("logs", title, "pass", [f"{count} lines, no known problem"])
    evidence = [f"{f.id}: {f.evidence[0] if f.evidence else f.title}" for f in findings]
    worst = findings[0]
    verdicts: dict[str, Status] = {"error": "fail", "warning": "warn"}
    status = verdicts.get(worst.severity, "pass")
    if status != "pass":
        title = f"Container log: {worst.title}"
    running = bool(((facts.container or {}).get("State") or {}).get("Running"))
    if status == "fail" and running:  # a crash or a load failure: look inside it
        evidence.append(f"look inside the container: `{exec_line(deps.deployment.name)}`")
    return make_result("logs", title, status, evidence, fix=worst.fix, doc=worst.doc,
                       findings=findings)


# --------------------------------------------------------------------------- the order


CHECKS: tuple[Check, ...] = (
    Check("preset", "Preset is valid", check_preset),
    Check("tokens", "Tokens in the environment (names only)", check_tokens, needs=("preset",)),
    Check("lambda-key", "Lambda API key is accepted", check_lambda_key,
          not_applicable=_only_lambda),
    Check("instance", "Instance is active", check_instance, needs=("lambda-key",),
          not_applicable=_only_lambda),
    Check("forgotten", "Every instance fluxdeploy launched has a record here", check_forgotten,
          needs=("lambda-key",), not_applicable=_only_lambda),
    Check("ssh", "SSH reaches the host (pinned host key)", check_host, needs=("instance",)),
    Check("docker", "Docker daemon answers", check_docker, needs=("ssh",)),
    Check("gpu", "GPU visible to containers", check_gpu, needs=("docker", "preset"),
          not_applicable=_gpu_not_needed),
    Check("image", "Bundled image built on the host", check_bundled_image, needs=("docker",),
          not_applicable=not_bundled),
    Check("container", "Container is running", check_container, needs=("docker",)),
    Check("logs", "Container log diagnosed", check_logs, needs=("docker",)),
    Check("health", "/health answers on the host", check_health, needs=("container", "preset")),
    Check("ready", "/ready: the model is loaded", check_ready, needs=("health",)),
    Check("tls", "TLS: the server presents the pinned certificate", check_tls,
          needs=("container",), not_applicable=tls_not_applicable),
    Check("auth", "API key: required, and this machine's is taken", check_auth,
          needs=("health",), not_applicable=auth_not_applicable),
    Check("external", "Port reachable from here at the public IP", check_external,
          needs=("health", "preset"), not_applicable=external_not_applicable),
    Check("cluster", "Cluster: every node joined, replicas ready", check_cluster,
          needs=("docker",), not_applicable=not_a_cluster),
)


def _tail(text: str, lines: int) -> list[str]:
    return [line for line in text.strip().splitlines() if line.strip()][-lines:]
