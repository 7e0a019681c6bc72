"""doctor's checks over fake dependencies: order, skip chains, causes, exit codes, JSON, and
that doctor only ever reads."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from rich.console import Console

from intelligensi_deploy.cloud.lambda_errors import InvalidAPIKey
from intelligensi_deploy.cloud.lambda_types import FirewallRule, Instance
from intelligensi_deploy.diagnosis.diagnose import diagnose
from intelligensi_deploy.diagnosis.exposure import external_cause, published_addresses, rule_opens
from intelligensi_deploy.diagnosis.findings import make_finding
from intelligensi_deploy.diagnosis.gpu_memory import APPS_QUERY, GPU_QUERY
from intelligensi_deploy.doctor.check_types import DoctorDeps, HttpAnswer
from intelligensi_deploy.doctor.checks import CHECKS
from intelligensi_deploy.doctor.command import main as doctor_main
from intelligensi_deploy.doctor.diagnose_command import diagnose_main
from intelligensi_deploy.doctor.report import (
    diagnose_exit_code,
    doctor_exit_code,
    doctor_json,
    findings_json,
    render_doctor,
    render_findings,
    summary_line,
)
from intelligensi_deploy.doctor.runner import run_checks
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.presets import parse_preset
from intelligensi_deploy.remote.host import HostKeyMismatch, RunResult
from intelligensi_deploy.state import Deployment
from intelligensi_deploy.tls_cert import make_certificate

IP = "203.0.113.7"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeHostKeyForTests"
HF_TOKEN_VALUE = "hf_" + "SeCrEtToKeNvAlUe0123456789abcdef"

LAMBDA_PRESET = """\
provider: lambda
lambda: {instance_type: gpu_1x_h100_pcie, regions: [us-east-1], ssh_key_name: laptop}
image: ghcr.io/intelligensi/flux-server:latest
server: {model: black-forest-labs/FLUX.1-schnell, memory: gpu}
port: 8000
exposure: EXPOSURE
"""
LOCAL_PRESET = """\
provider: local
image: fluxdeploy/flux-server:cpu
server: {model: tiny, memory: cpu, dtype: fp32}
gpus: false
port: 8000
"""
SSH_PRESET = """\
provider: ssh
ssh: {host: 198.51.100.9, user: ubuntu}
image: ghcr.io/intelligensi/flux-server:latest
server: {model: black-forest-labs/FLUX.1-dev, memory: gpu}
exposure: public
"""

HEALTHY_LOG = """\
INFO:     Started server process [1]
INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)
INFO:     flux_server.loader: loading model=black-forest-labs/FLUX.1-schnell
INFO:     flux_server.loader: model ready: model=black-forest-labs/FLUX.1-schnell strategy=gpu dtype=bf16
INFO:     172.17.0.1:40020 - "GET /ready HTTP/1.1" 200 OK"""

READY_BODY = {"state": "ready", "ready": True, "model": "black-forest-labs/FLUX.1-schnell",
              "tiny": False, "elapsed_s": 312.4, "phase_elapsed_s": {}, "progress": {},
              "error": None}


def inspect_doc(*, status: str = "running", exit_code: int = 0, oom: bool = False,
                restarts: int = 0, host_ip: str = "0.0.0.0", error: str = "") -> dict[str, Any]:
    """A `docker inspect` object, trimmed to the fields doctor reads."""
    return {
        "Name": "/fluxdeploy-flux",
        "RestartCount": restarts,
        "State": {"Status": status, "Running": status in ("running", "restarting"),
                  "Restarting": status == "restarting", "OOMKilled": oom, "Dead": False,
                  "ExitCode": exit_code, "Error": error,
                  "StartedAt": "2026-11-23T18:00:00.000000000Z"},
        "HostConfig": {"PortBindings": {"8000/tcp": [{"HostIp": host_ip, "HostPort": "8000"}]},
                       "RestartPolicy": {"Name": "unless-stopped"}},
        "Config": {"Labels": {"fluxdeploy.deployment": "flux"}},
    }


# --------------------------------------------------------------------------- fakes


class FakeHost:
    def __init__(self, *, label: str = f"ubuntu@{IP}:22", nvidia_smi: RunResult | None = None,
                 forward_error: Exception | None = None) -> None:
        self.label = label
        self.commands: list[tuple[str, ...]] = []
        self.forwards: list[int] = []
        self.nvidia_smi = nvidia_smi or RunResult(
            ("nvidia-smi", "-L"), 0, "GPU 0: NVIDIA H100 PCIe (UUID: GPU-1234)\n", "")
        self.forward_error = forward_error

    def run(self, argv: Sequence[str], *, stdin: bytes | None = None,
            timeout: float | None = None, on_output: Any = None) -> RunResult:
        argv = tuple(argv)
        self.commands.append(argv)
        if argv == ("nvidia-smi", "-L"):
            return self.nvidia_smi
        return RunResult(argv, 0, "", "")

    @contextlib.contextmanager
    def forward(self, remote_port: int, *, local_port: int = 0,
                remote_host: str = "127.0.0.1") -> Iterator[int]:
        if self.forward_error:
            raise self.forward_error
        self.forwards.append(remote_port)
        yield 40000 + remote_port

    def close(self) -> None:
        pass


class FakeDocker:
    def __init__(self, *, inspect: dict[str, Any] | None = None, logs: str = HEALTHY_LOG,
                 info_ok: bool = True, runtimes: Sequence[str] = ("runc", "nvidia")) -> None:
        self._inspect = inspect if inspect is not None else inspect_doc()
        self._logs = logs
        self.info_ok = info_ok
        self.runtimes = runtimes
        self.calls: list[tuple[str, ...]] = []

    def run_docker(self, args: Sequence[str], *, timeout: float | None = None) -> RunResult:
        self.calls.append(tuple(args))
        if not self.info_ok:
            return RunResult(("docker", *args), 1, "",
                             "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                             "Is the docker daemon running?")
        info = {"ServerVersion": "27.3.1", "Runtimes": {r: {} for r in self.runtimes}}
        return RunResult(("docker", *args), 0, json.dumps(info), "")

    def inspect(self, name: str) -> dict[str, Any] | None:
        self.calls.append(("inspect", name))
        return self._inspect or None

    def logs(self, name: str, *, tail: int | None = None) -> str:
        self.calls.append(("logs", name, str(tail)))
        return self._logs


class FakeLambda:
    def __init__(self, *, status: str = "active", region: str = "us-east-1",
                 rules: Sequence[FirewallRule] | None = None, bad_key: bool = False) -> None:
        self.instance = Instance(id="i-0123", status=status, region=region,
                                 instance_type="gpu_1x_h100_pcie", ip=IP)
        self.rules = list(rules) if rules is not None else [
            FirewallRule("tcp", (22, 22), "0.0.0.0/0", "SSH"),
            FirewallRule("icmp", None, "0.0.0.0/0", "ping"),
            FirewallRule("tcp", (8000, 8000), "0.0.0.0/0", "fluxdeploy flux"),
        ]
        self.bad_key = bad_key
        self.calls: list[str] = []

    def list_instances(self) -> list[Instance]:
        self.calls.append("list_instances")
        if self.bad_key:
            raise InvalidAPIKey("The Lambda Cloud API refused the API key "
                                "(global/invalid-api-key).")
        return [self.instance]

    def get_instance(self, instance_id: str) -> Instance:
        self.calls.append("get_instance")
        return self.instance

    def firewall_rules(self) -> list[FirewallRule]:
        self.calls.append("firewall_rules")
        return self.rules


class FakeHttp:
    """Answers by URL; an Exception value is raised (no answer)."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.urls: list[tuple[str, float]] = []

    def __call__(self, url: str, timeout: float) -> HttpAnswer:
        self.urls.append((url, timeout))
        for suffix, answer in self.answers.items():
            if url.endswith(suffix):
                if isinstance(answer, Exception):
                    raise answer
                return answer
        raise ConnectionRefusedError(url)


GOOD_KEY = "fxk_" + "k" * 43
NOW = 1_800_000_000.0
CERT = make_certificate(IP, "flux")
PINNED = {"tls_cert": CERT.cert_pem, "tls_fingerprint": CERT.fingerprint,
          "tls_expires_at": NOW + 200 * 86400}


class FakeKeyedServer:
    """The server's API routes as `keyed_get` sees them: 401 unless the key is one of
    `keys` (no keys: the server checks none and answers everything)."""

    def __init__(self, keys: tuple[str, ...] = (GOOD_KEY,)) -> None:
        self.keys = keys
        self.calls: list[tuple[str, str | None]] = []

    def __call__(self, url: str, timeout: float, key: str | None) -> HttpAnswer:
        self.calls.append((url, key))
        if self.keys and key not in self.keys:
            return HttpAnswer(401, {"error": {"type": "Unauthorized"}})
        return HttpAnswer(200, {"model": "x"})


def deployment(provider: str = "lambda", **fields: Any) -> Deployment:
    base = {"name": "flux", "preset": "p", "provider": provider, "phase": "ready",
            "container_name": "fluxdeploy-flux", "port": 8000}
    if provider == "lambda":
        base |= {"instance_id": "i-0123", "region": "us-east-1", "ip": IP, "ssh_user": "ubuntu",
                 "ssh_port": 22, "host_key": HOST_KEY, "exposure": "public", "auth": True,
                 **PINNED}
    if provider == "ssh":
        base |= {"ip": "198.51.100.9", "ssh_user": "ubuntu", "host_key": HOST_KEY,
                 "exposure": "public", "auth": True, **PINNED}
    return Deployment(**(base | fields))


def local_answers(ready: dict[str, Any] | None = None, ready_status: int = 200) -> dict[str, Any]:
    return {
        "127.0.0.1:40000/health".replace("40000", "48000"): HttpAnswer(200, {"status": "ok"}),
        "127.0.0.1:48000/ready": HttpAnswer(ready_status, ready or READY_BODY),
    }


def make_deps(*, provider: str = "lambda", exposure: str = "public", host: FakeHost | None = None,
              docker: FakeDocker | None = None, cloud: FakeLambda | None = None,
              http: FakeHttp | None = None, preset_text: str | None = None,
              environ: dict[str, str] | None = None, connect_error: Exception | None = None,
              server: FakeKeyedServer | None = None, laptop_key: str | None = GOOD_KEY,
              **dep_fields: Any) -> DoctorDeps:
    host = host or FakeHost()
    docker = docker or FakeDocker()
    cloud = cloud or FakeLambda()
    if http is None:
        http = FakeHttp(local_answers() | {f"{IP}:8000/health": HttpAnswer(200, {"status": "ok"})})
    text = preset_text or {"lambda": LAMBDA_PRESET.replace("EXPOSURE", exposure),
                           "local": LOCAL_PRESET, "ssh": SSH_PRESET}[provider]

    def connect() -> FakeHost:
        if connect_error:
            raise connect_error
        return host

    if provider == "lambda":
        dep_fields.setdefault("exposure", exposure)
    return DoctorDeps(
        deployment=deployment(provider, **dep_fields),
        load_preset=lambda ref: parse_preset(text, f"{provider}-test.yaml"),
        connect=connect,
        docker_for=lambda h: docker,
        http_get=http,
        lambda_client=(lambda: cloud),
        environ=environ if environ is not None else {"LAMBDA_API_KEY": "secret_x_" + "a" * 32},
        records=list,
        keyed_get=server or FakeKeyedServer(),
        api_key=lambda: laptop_key,
        peer_fingerprint=lambda host, port: CERT.fingerprint,
        clock=lambda: NOW,
    )


def statuses(report) -> dict[str, str]:
    return {c.id: c.status for c in report.checks}


def check(report, check_id: str):
    return next(c for c in report.checks if c.id == check_id)


# --------------------------------------------------------------------------- healthy


BUNDLED_TAG = "fluxdeploy/flux-server:0123456789ab"


def test_healthy_public_lambda_deployment_passes_every_check() -> None:
    report = run_checks(make_deps(image_source="bundled", image=BUNDLED_TAG))
    assert statuses(report) == {c.id: "skip" if c.id == "cluster" else "pass" for c in CHECKS}
    assert check(report, "cluster").evidence == ("one VM: no cluster",)
    assert report.findings == ()
    assert doctor_exit_code(report) == 0
    assert summary_line(report) == f"{len(CHECKS) - 1} passed, 1 skipped: all good"


def test_checks_run_in_the_documented_order() -> None:
    report = run_checks(make_deps())
    assert [c.id for c in report.checks] == [
        "preset", "tokens", "lambda-key", "instance", "forgotten", "ssh", "docker", "gpu",
        "image",
        "container", "logs", "health", "ready", "tls", "auth", "external", "cluster"]


def test_health_and_ready_are_asked_on_the_hosts_localhost_through_the_forward() -> None:
    host = FakeHost()
    http = FakeHttp(local_answers() | {f"{IP}:8000/health": HttpAnswer(200, {})})
    server = FakeKeyedServer()
    run_checks(make_deps(host=host, http=http, server=server))
    # /health, /ready, the TLS handshake, auth without and with the key
    assert host.forwards == [8000, 8000, 8000, 8000, 8000]
    # a public endpoint speaks HTTPS, on the host's loopback and at the public address
    assert server.calls == [("https://127.0.0.1:48000/model-status", None),
                            ("https://127.0.0.1:48000/model-status", GOOD_KEY)]
    asked = [url for url, _ in http.urls]
    assert asked == ["https://127.0.0.1:48000/health", "https://127.0.0.1:48000/ready",
                     f"https://{IP}:8000/health"]
    assert http.urls[-1][1] <= 5  # the external check uses a short timeout


def test_tunnel_exposure_skips_the_external_check_and_names_the_tunnel() -> None:
    report = run_checks(make_deps(exposure="tunnel"))
    external = check(report, "external")
    assert external.status == "skip"
    assert "fluxdeploy tunnel --name flux" in external.evidence[0]
    assert doctor_exit_code(report) == 0


def test_doctor_is_read_only() -> None:
    host, docker, cloud = FakeHost(), FakeDocker(), FakeLambda()
    run_checks(make_deps(host=host, docker=docker, cloud=cloud))
    assert set(host.commands) <= {("true",), ("nvidia-smi", "-L"), GPU_QUERY, APPS_QUERY}
    assert {call[0] for call in docker.calls} <= {"info", "inspect", "logs", "top"}
    assert set(cloud.calls) <= {"list_instances", "get_instance", "firewall_rules"}


# --------------------------------------------------------------------------- skip chains


def test_refused_lambda_key_skips_everything_that_needs_the_vm_and_says_why() -> None:
    report = run_checks(make_deps(cloud=FakeLambda(bad_key=True)))
    s = statuses(report)
    assert s["preset"] == "pass" and s["tokens"] == "pass"
    assert s["lambda-key"] == "fail"
    assert check(report, "lambda-key").doc == "lambda-api-key"
    for dependent in ("instance", "ssh", "docker", "gpu", "container", "logs", "health",
                      "ready", "external"):
        assert s[dependent] == "skip", dependent
    assert "Lambda API key is accepted" in check(report, "instance").evidence[0]
    assert check(report, "docker").evidence == (
        "skipped: needs 'SSH reaches the host (pinned host key)' (skip)",)
    assert doctor_exit_code(report) == 1
    assert "first failure: Lambda API key is accepted" in summary_line(report)


def test_missing_lambda_client_is_a_failure_of_the_key_check() -> None:
    deps = make_deps()
    deps.lambda_client = None
    assert statuses(run_checks(deps))["lambda-key"] == "fail"


def test_booting_instance_warns_and_goes_on() -> None:
    report = run_checks(make_deps(cloud=FakeLambda(status="booting")))
    assert check(report, "instance").status == "warn"
    assert check(report, "ssh").status == "pass"


@pytest.mark.parametrize("status", ["terminated", "unhealthy", "preempted"])
def test_dead_instance_fails_and_skips_ssh(status: str) -> None:
    report = run_checks(make_deps(cloud=FakeLambda(status=status)))
    assert check(report, "instance").status == "fail"
    assert status in check(report, "instance").evidence[0]
    assert check(report, "ssh").status == "skip"


def test_instance_gone_from_the_account_fails_with_a_fix() -> None:
    from intelligensi_deploy.cloud.lambda_errors import ObjectNotFound

    class Gone(FakeLambda):
        def list_instances(self) -> list[Instance]:
            return []

        def get_instance(self, instance_id: str) -> Instance:
            raise ObjectNotFound("Instance i-0123 not found.")

    report = run_checks(make_deps(cloud=Gone()))
    instance = check(report, "instance")
    assert instance.status == "fail" and "no longer exists" in instance.evidence[0]
    assert "fluxdeploy down" in instance.fix


def test_changed_host_key_fails_ssh_and_skips_container_checks() -> None:
    error = HostKeyMismatch(f"ubuntu@{IP}:22", "SHA256:old", "SHA256:new")
    report = run_checks(make_deps(connect_error=error))
    ssh = check(report, "ssh")
    assert ssh.status == "fail" and ssh.doc == "ssh-host-key-changed"
    assert "has changed" in ssh.evidence[0]
    assert {check(report, i).status for i in ("docker", "container", "logs", "health")} == {"skip"}


def test_unpinned_host_key_is_a_warning() -> None:
    report = run_checks(make_deps(host_key=None))
    assert check(report, "ssh").status == "warn"


def test_docker_daemon_down_skips_the_container_checks() -> None:
    report = run_checks(make_deps(docker=FakeDocker(info_ok=False)))
    docker = check(report, "docker")
    assert docker.status == "fail" and docker.doc == "docker-daemon"
    assert "Cannot connect to the Docker daemon" in docker.evidence[-1]
    assert {check(report, i).status for i in ("gpu", "container", "logs", "health")} == {"skip"}


def test_an_unexpected_exception_in_a_check_fails_that_check_only() -> None:
    class BrokenDocker(FakeDocker):
        def logs(self, name: str, *, tail: int | None = None) -> str:
            raise RuntimeError("stream closed")

    report = run_checks(make_deps(docker=BrokenDocker()))
    logs = check(report, "logs")
    assert logs.status == "fail" and "RuntimeError: stream closed" in logs.evidence[0]
    assert check(report, "health").status == "pass"


def test_a_fluxdeploy_error_keeps_its_fix_and_doc() -> None:
    deps = make_deps()

    def broken(ref: str) -> Any:
        raise FluxdeployError("p.yaml: invalid preset: port: 99999", fix="Use 1-65535.",
                              doc="presets")

    deps.load_preset = broken
    report = run_checks(deps)
    preset = check(report, "preset")
    assert (preset.status, preset.fix, preset.doc) == ("fail", "Use 1-65535.", "presets")
    assert check(report, "tokens").status == "skip"


# --------------------------------------------------------------------------- GPU


def test_no_driver_on_the_host_fails_gpu_with_nvidia_runtime() -> None:
    smi = RunResult(("nvidia-smi", "-L"), 127, "", "sh: 1: nvidia-smi: not found")
    report = run_checks(make_deps(host=FakeHost(nvidia_smi=smi)))
    gpu = check(report, "gpu")
    assert gpu.status == "fail" and gpu.doc == "nvidia-runtime"
    assert [f.id for f in report.findings] == ["nvidia-runtime"]


def test_missing_nvidia_runtime_in_docker_fails_gpu() -> None:
    report = run_checks(make_deps(docker=FakeDocker(runtimes=("runc",))))
    gpu = check(report, "gpu")
    assert gpu.status == "fail"
    assert "Docker runtimes: runc" in gpu.evidence


def test_cpu_preset_skips_the_gpu_check() -> None:
    report = run_checks(make_deps(provider="local", host=FakeHost(label="local")))
    assert check(report, "gpu").status == "skip"
    assert "gpus: false" in check(report, "gpu").evidence[0]


# --------------------------------------------------------------------------- container


def test_oom_killed_container_fails_and_logs_are_still_read() -> None:
    docker = FakeDocker(inspect=inspect_doc(status="exited", exit_code=137, oom=True),
                        logs=HEALTHY_LOG.rsplit("\n", 2)[0] + "\nKilled")
    report = run_checks(make_deps(docker=docker))
    container = check(report, "container")
    assert container.status == "fail"
    assert "exited (137)" in container.title
    assert "OOMKilled true" in container.evidence[0]
    assert container.doc == "oom-killed"
    assert check(report, "logs").status == "fail"
    assert check(report, "health").status == "skip"
    assert [f.id for f in report.findings] == ["oom-killed"]


def test_restart_loop_is_a_failure_with_the_restart_count() -> None:
    docker = FakeDocker(inspect=inspect_doc(status="restarting", exit_code=1, restarts=14))
    report = run_checks(make_deps(docker=docker))
    container = check(report, "container")
    assert container.status == "fail" and "restarting" in container.title
    assert "restarts 14" in container.evidence[0]


def test_running_after_restarts_is_a_warning() -> None:
    report = run_checks(make_deps(docker=FakeDocker(inspect=inspect_doc(restarts=2))))
    assert check(report, "container").status == "warn"
    assert check(report, "health").status == "pass"


def test_container_that_could_not_start_on_gpu_is_diagnosed_from_its_state_error() -> None:
    error = 'could not select device driver "" with capabilities: [[gpu]]'
    docker = FakeDocker(inspect=inspect_doc(status="created", exit_code=128, error=error), logs="")
    report = run_checks(make_deps(docker=docker))
    container = check(report, "container")
    assert container.status == "fail" and container.doc == "nvidia-runtime"
    assert f"docker: {error}" in container.evidence


def test_missing_container_fails_and_logs_are_skipped() -> None:
    report = run_checks(make_deps(docker=FakeDocker(inspect={})))
    assert check(report, "container").status == "fail"
    assert check(report, "logs").status == "skip"
    assert "no container" in check(report, "logs").evidence[0]


def test_gated_model_in_the_logs_and_in_ready() -> None:
    logs = HEALTHY_LOG.split("\n")[:3] + [
        "huggingface_hub.errors.GatedRepoError: 401 Client Error. (Request ID: Root=1-abc)",
        ("ERROR:    flux_server.loader: model load failed: model=black-forest-labs/FLUX.1-dev "
        "type=GatedRepoError message=401 Client Error. hint=accept the licence")]
    failed = READY_BODY | {"state": "failed", "ready": False, "error": {
        "type": "GatedRepoError", "message": "401 Client Error. Cannot access gated repo",
        "hint": "Set HF_TOKEN to a token with access"}}
    http = FakeHttp(local_answers(failed, 503) | {f"{IP}:8000/health": HttpAnswer(200, {})})
    report = run_checks(make_deps(docker=FakeDocker(logs="\n".join(logs)), http=http))
    assert check(report, "logs").status == "fail"
    assert check(report, "logs").doc == "hf-auth"
    ready = check(report, "ready")
    assert ready.status == "fail" and ready.doc == "hf-auth"
    assert ready.fix == "Set HF_TOKEN to a token with access"
    assert ready.evidence == ("HTTP 503: failed after 312 s",
                              "error: GatedRepoError: 401 Client Error. Cannot access gated repo")
    assert [f.id for f in report.findings] == ["hf-auth"]


def test_still_loading_is_a_warning_that_says_do_not_redeploy() -> None:
    loading = READY_BODY | {"state": "downloading", "ready": False, "elapsed_s": 420.0,
                            "progress": {"bytes_done": 3_200_000_000,
                                         "bytes_total": 23_800_000_000}}
    logs = HEALTHY_LOG.split("\n")[:3]
    http = FakeHttp(local_answers(loading, 503) | {f"{IP}:8000/health": HttpAnswer(200, {})})
    report = run_checks(make_deps(docker=FakeDocker(logs="\n".join(logs)), http=http))
    ready = check(report, "ready")
    assert ready.status == "warn"
    assert "Do not redeploy" in ready.fix
    assert "downloading 3.20/23.80 GB" in ready.evidence[0]
    assert ready.doc == "still-loading"
    assert doctor_exit_code(report) == 0
    assert "still-loading" in [f.id for f in report.findings]


def test_health_down_skips_ready_and_external() -> None:
    http = FakeHttp({})  # nothing answers
    report = run_checks(make_deps(http=http))
    assert check(report, "health").status == "fail"
    assert check(report, "ready").status == "skip"
    assert check(report, "external").status == "skip"


def test_server_bound_to_loopback_explains_the_failed_health_check() -> None:
    logs = HEALTHY_LOG.replace("http://0.0.0.0:8000", "http://127.0.0.1:8000")
    report = run_checks(make_deps(docker=FakeDocker(logs=logs), http=FakeHttp({})))
    health = check(report, "health")
    assert health.status == "fail" and health.doc == "bound-to-loopback"
    assert "fluxdeploy tunnel" in health.fix


# --------------------------------------------------------------------------- external cause


def _external_down(**kwargs: Any) -> DoctorDeps:
    http = FakeHttp(local_answers() | {f"{IP}:8000/health": TimeoutError("timed out")})
    return make_deps(http=http, **kwargs)


def test_published_on_loopback_only_is_named_before_the_firewall() -> None:
    cloud = FakeLambda(rules=[])
    docker = FakeDocker(inspect=inspect_doc(host_ip="127.0.0.1"))
    report = run_checks(_external_down(cloud=cloud, docker=docker))
    external = check(report, "external")
    assert external.status == "fail" and external.doc == "exposure"
    assert "127.0.0.1 only" in external.evidence[1]
    assert "fluxdeploy tunnel --name flux" in external.fix


def test_preset_switched_to_public_but_not_redeployed_is_named() -> None:
    # deployed with exposure tunnel (state), the preset now says public
    docker = FakeDocker(inspect=inspect_doc(host_ip="127.0.0.1"))
    deps = _external_down(docker=docker, exposure="public")
    deps.deployment = deps.deployment.model_copy(update={"exposure": "tunnel"})
    external = check(run_checks(deps), "external")
    assert external.doc == "exposure"
    assert "set `exposure: public` in the preset" in external.fix
    deps = _external_down(docker=docker, exposure="tunnel")
    assert check(run_checks(deps), "external").status == "skip"


def test_no_firewall_rule_for_the_port_is_firewall_closed() -> None:
    cloud = FakeLambda(rules=[FirewallRule("tcp", (22, 22), "0.0.0.0/0", "SSH")])
    report = run_checks(_external_down(cloud=cloud))
    external = check(report, "external")
    assert external.doc == "firewall-closed"
    assert "no Lambda firewall rule opens TCP 8000 (rules: tcp 22 from 0.0.0.0/0)" in \
        external.evidence[1]
    assert "fluxdeploy tunnel --name flux" in external.fix
    assert [f.id for f in report.findings] == ["firewall-closed"]
    assert doctor_exit_code(report) == 1


def test_us_south_1_has_no_firewall_rules_to_blame() -> None:
    cloud = FakeLambda(region="us-south-1", rules=[])
    report = run_checks(_external_down(cloud=cloud, region="us-south-1"))
    external = check(report, "external")
    assert "us-south-1" in external.evidence[1]
    assert "firewall_rules" not in cloud.calls
    assert "firewall-closed" not in [f.id for f in report.findings]


def test_an_open_rule_points_at_the_source_network() -> None:
    cloud = FakeLambda(rules=[FirewallRule("tcp", (8000, 8010), "198.51.100.0/24", "office")])
    report = run_checks(_external_down(cloud=cloud))
    assert "from 198.51.100.0/24" in check(report, "external").evidence[1]


def test_ssh_provider_cannot_read_a_firewall() -> None:
    http = FakeHttp(local_answers() | {"198.51.100.9:8000/health": TimeoutError()})
    report = run_checks(make_deps(provider="ssh", http=http,
                                  environ={"HF_TOKEN": HF_TOKEN_VALUE}))
    s = statuses(report)
    assert s["lambda-key"] == "skip" and s["instance"] == "skip"
    assert "provider ssh" in check(report, "lambda-key").evidence[0]
    assert s["ssh"] == "pass"
    external = check(report, "external")
    assert external.status == "fail"
    assert "cannot be read" in external.evidence[1]


def test_external_cause_is_pure_and_ordered() -> None:
    loopback = make_finding("bound-to-loopback",
                            ["INFO:     Uvicorn running on http://127.0.0.1:8000"])
    published_local = inspect_doc(host_ip="127.0.0.1")
    published_all = inspect_doc(host_ip="0.0.0.0")
    closed: list[FirewallRule] = []
    tunnel = "fluxdeploy tunnel --name flux"
    assert external_cause(published_local, [loopback], closed, "us-east-1", 8000, tunnel).doc \
        == "exposure"
    assert external_cause(published_all, [loopback], closed, "us-east-1", 8000, tunnel).doc \
        == "bound-to-loopback"
    cause = external_cause(published_all, [], closed, "us-east-1", 8000, tunnel)
    assert cause.doc == "firewall-closed" and cause.findings[0].id == "firewall-closed"
    assert tunnel in cause.fix


def test_published_addresses_and_rule_matching() -> None:
    assert published_addresses(inspect_doc(host_ip="127.0.0.1")) == ["127.0.0.1"]
    assert published_addresses({"HostConfig": {"PortBindings": {}}}) == []
    assert rule_opens(FirewallRule("tcp", (8000, 8000), "0.0.0.0/0"), 8000)
    assert rule_opens(FirewallRule("tcp", (7000, 9000), "0.0.0.0/0"), 8000)
    assert rule_opens(FirewallRule("all", None, "0.0.0.0/0"), 8000)
    assert not rule_opens(FirewallRule("tcp", (22, 22), "0.0.0.0/0"), 8000)
    assert not rule_opens(FirewallRule("udp", (8000, 8000), "0.0.0.0/0"), 8000)
    assert not rule_opens(FirewallRule("icmp", None, "0.0.0.0/0"), 8000)


# --------------------------------------------------------------------------- local provider


def test_local_provider_skips_cloud_and_outside_checks() -> None:
    report = run_checks(make_deps(provider="local", host=FakeHost(label="local")))
    s = statuses(report)
    assert s["lambda-key"] == s["instance"] == s["gpu"] == s["external"] == "skip"
    assert s["ssh"] == s["docker"] == s["container"] == s["logs"] == s["health"] == "pass"
    assert "no SSH" in check(report, "ssh").evidence[0]
    assert doctor_exit_code(report) == 0


def test_local_provider_with_a_shipped_preset() -> None:
    from intelligensi_deploy.presets import load_preset

    deps = make_deps(provider="local", host=FakeHost(label="local"))
    deps.load_preset = load_preset
    deps.deployment = deps.deployment.model_copy(update={"preset": "local"})
    assert check(run_checks(deps), "preset").status == "pass"


# --------------------------------------------------------------------------- tokens, redaction


def test_tokens_check_shows_names_never_values() -> None:
    env = {"HF_TOKEN": HF_TOKEN_VALUE, "LAMBDA_API_KEY": "secret_k_" + "b" * 32}
    report = run_checks(make_deps(environ=env))
    tokens = check(report, "tokens")
    assert tokens.evidence[0] == "set: HF_TOKEN, LAMBDA_API_KEY"
    assert HF_TOKEN_VALUE not in json.dumps(doctor_json(report))


def test_gated_model_without_hf_token_warns() -> None:
    http = FakeHttp(local_answers() | {"198.51.100.9:8000/health": HttpAnswer(200, {})})
    report = run_checks(make_deps(provider="ssh", http=http, environ={}))
    tokens = check(report, "tokens")
    assert tokens.status == "warn" and tokens.doc == "hf-auth"
    assert "FLUX.1-dev is gated" in tokens.evidence[-1]


def test_secrets_in_logs_never_reach_the_report() -> None:
    logs = HEALTHY_LOG + f"\nValueError: bad header Bearer {HF_TOKEN_VALUE}\nKilled"
    env = {"GHCR_TOKEN": "ghcr-plain-value-123"}
    docker = FakeDocker(logs=logs + "\nlogin with ghcr-plain-value-123 refused")
    report = run_checks(make_deps(docker=docker, environ=env))
    text = json.dumps(doctor_json(report))
    assert HF_TOKEN_VALUE not in text and "ghcr-plain-value-123" not in text


# --------------------------------------------------------------------------- report


def test_doctor_json_shape() -> None:
    http = FakeHttp(local_answers() | {f"{IP}:8000/health": TimeoutError()})
    doc = doctor_json(run_checks(make_deps(http=http, cloud=FakeLambda(rules=[]))))
    assert set(doc) == {"checks", "findings", "summary"}
    for item in doc["checks"]:
        assert set(item) == {"id", "title", "status", "evidence", "fix", "doc"}
        assert item["status"] in ("pass", "warn", "fail", "skip")
        assert isinstance(item["evidence"], list)
    for item in doc["findings"]:
        assert set(item) == {"id", "severity", "title", "evidence", "fix", "doc"}
    assert doc["summary"].startswith("14 passed, 1 failed")
    json.dumps(doc)  # serialisable


def test_diagnose_json_and_exit_codes() -> None:
    findings = diagnose("OSError: [Errno 28] No space left on device")
    assert findings_json(findings) == {"findings": [findings[0].to_dict()]}
    assert diagnose_exit_code(findings) == 1
    assert diagnose_exit_code(diagnose("state=downloading")) == 0  # a warning only
    assert diagnose_exit_code([]) == 0
    assert findings_json([]) == {"findings": []}


def test_doctor_exit_codes() -> None:
    assert doctor_exit_code(None) == 2
    assert doctor_exit_code(run_checks(make_deps())) == 0
    assert doctor_exit_code(run_checks(make_deps(cloud=FakeLambda(bad_key=True)))) == 1


def _render(renderable: Any) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_rendering_prints_log_text_literally() -> None:
    error = 'could not select device driver "" with capabilities: [[gpu]]'
    docker = FakeDocker(inspect=inspect_doc(status="created", exit_code=128, error=error), logs="")
    report = run_checks(make_deps(docker=docker))
    text = _render(render_doctor(report))
    assert "[[gpu]]" in text
    assert "PLAYBOOK.md#nvidia-runtime" in text
    assert summary_line(report) in text
    assert "[bold]" not in _render(render_findings(diagnose(f"x\n{error}")))


def test_rendered_findings_end_with_a_summary() -> None:
    text = _render(render_findings(diagnose("OSError: [Errno 28] No space left on device")))
    assert "disk-full" in text and "1 finding(s), 1 error(s): disk-full" in text
    assert "no known problem found" in _render(render_findings([]))


# --------------------------------------------------------------------------- wiring


def test_the_connection_doctor_opened_is_closed() -> None:
    closed: list[str] = []

    class ClosingHost(FakeHost):
        def close(self) -> None:
            closed.append(self.label)

    run_checks(make_deps(host=ClosingHost()))
    assert closed == [f"ubuntu@{IP}:22"]


def test_diagnose_main_reads_a_file_and_returns_the_exit_code(
        tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "flux.log"
    log.write_text("2026-11-23T18:00:00.000000000Z OSError: [Errno 28] No space left on device\n")
    assert diagnose_main(str(log), as_json=True) == 1
    out = json.loads(capsys.readouterr().out)
    assert [f["id"] for f in out["findings"]] == ["disk-full"]
    log.write_text("INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)\n")
    assert diagnose_main(str(log)) == 0
    assert "no known problem found" in capsys.readouterr().out
    assert diagnose_main(str(tmp_path / "missing.log")) == 2


def test_diagnose_main_reads_stdin(monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("state=downloading\n"))
    assert diagnose_main("-", as_json=True) == 0
    assert json.loads(capsys.readouterr().out)["findings"][0]["id"] == "still-loading"


def test_doctor_main_without_a_deployment_exits_2(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FLUXDEPLOY_HOME", str(tmp_path))
    assert doctor_main(None, as_json=True) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["checks"] == [] and out["summary"].startswith("doctor could not run")


# --------------------------------------------------------------------------- auth


def test_public_endpoint_that_answers_without_a_key_is_an_error_whose_fix_is_up() -> None:
    report = run_checks(make_deps(server=FakeKeyedServer(keys=())))
    auth = check(report, "auth")
    assert auth.status == "fail" and auth.doc == "open-endpoint"
    assert auth.evidence == ("/model-status without a key: HTTP 200",)
    assert [f.id for f in report.findings] == ["open-endpoint"]
    assert "fluxdeploy up" in auth.fix
    assert doctor_exit_code(report) == 1


def test_a_key_the_server_refuses_is_named_with_rotate_as_the_fix() -> None:
    report = run_checks(make_deps(laptop_key="fxk_" + "o" * 43))
    auth = check(report, "auth")
    assert auth.status == "fail" and [f.id for f in report.findings] == ["key-refused"]
    assert auth.evidence[-1] == "/model-status with this machine's key: HTTP 401"
    assert "fluxdeploy key rotate" in auth.fix
    assert "fxk_" not in json.dumps(doctor_json(report))  # the key itself is never shown


def test_no_key_on_this_machine_is_a_warning_not_a_failure() -> None:
    auth = check(run_checks(make_deps(laptop_key=None)), "auth")
    assert auth.status == "warn" and "key rotate" in auth.fix


def test_tunnel_without_auth_skips_the_auth_check() -> None:
    server = FakeKeyedServer()
    report = run_checks(make_deps(exposure="tunnel", auth=False, server=server))
    assert check(report, "auth").status == "skip" and server.calls == []


# --------------------------------------------------------------------------- tls

def _tls_deps(presented: str | None, days_left: float = 200, **fields: Any) -> DoctorDeps:
    deps = make_deps(tls_cert=CERT.cert_pem, tls_fingerprint=CERT.fingerprint,
                     tls_expires_at=NOW + days_left * 86400, **fields)
    deps.peer_fingerprint = lambda host, port: presented
    deps.clock = lambda: NOW
    return deps


def test_the_pinned_certificate_presented_with_months_left_passes() -> None:
    tls = check(run_checks(_tls_deps(CERT.fingerprint)), "tls")
    assert tls.status == "pass"
    assert tls.evidence == (f"pinned: {CERT.fingerprint}", f"presented: {CERT.fingerprint}",
                            "expires in 200 days")


def test_another_certificate_is_an_error_naming_both_fingerprints() -> None:
    other = make_certificate(IP, "flux").fingerprint
    report = run_checks(_tls_deps(other))
    tls = check(report, "tls")
    assert tls.status == "fail" and [f.id for f in report.findings] == ["cert-changed"]
    assert f"presented: {other}" in tls.evidence and "up --force" in tls.fix


def test_a_certificate_expiring_within_14_days_is_a_warning() -> None:
    report = run_checks(_tls_deps(CERT.fingerprint, days_left=9))
    tls = check(report, "tls")
    assert tls.status == "warn" and tls.evidence[-1] == "expires in 9 days"
    assert [f.id for f in report.findings] == ["cert-expiring"]


def test_a_public_record_without_a_pin_is_told_to_redeploy() -> None:
    tls = check(run_checks(make_deps(tls_cert=None, tls_fingerprint=None)), "tls")
    assert tls.status == "warn" and "up --force" in tls.fix
