"""The data of doctor's checks: what a check gets (`DoctorDeps`, `Facts`), what it gives
(`CheckResult`) and the report. No behaviour beyond building results."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from intelligensi_deploy.diagnosis.findings import Finding
from intelligensi_deploy.diagnosis.gpu_memory import GpuProcess

if TYPE_CHECKING:  # types only: this module stays as light as the data it holds
    from intelligensi_deploy.cloud.lambda_api import LambdaClient
    from intelligensi_deploy.cloud.lambda_types import Instance
    from intelligensi_deploy.presets import Preset
    from intelligensi_deploy.remote.host_protocol import Host
    from intelligensi_deploy.state import Deployment, NodeRecord

Status = Literal["pass", "warn", "fail", "skip"]
_T = TypeVar("_T")


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
# (url, timeout, bearer key) -> answer: the API routes behind the server's key
KeyedGet = Callable[[str, float, str | None], HttpAnswer]


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

    deployment: Deployment
    load_preset: Callable[[str], Preset]              # presets.load_preset
    connect: Callable[[], Host]
    docker_for: Callable[[Host], DockerLike]          # Host -> Docker
    http_get: HttpGet
    lambda_client: Callable[[], LambdaClient] | None = None
    build_log: Callable[[], str | None] | None = None  # the last failed build's record
    connect_node: Callable[[NodeRecord], Host] | None = None  # a node's Host (clusters)
    environ: Mapping[str, str] = field(default_factory=dict)
    records: Callable[[], list[dict[str, Any]]] | None = None  # None: this machine's records
    log_tail: int = 200
    local_timeout: float = 5.0
    external_timeout: float = 3.0
    keyed_get: KeyedGet | None = None  # for the auth check (doctor/auth_check.py)
    api_key: Callable[[], str | None] | None = None  # this machine's key of the deployment
    # (host, port) -> the SHA-256 fingerprint of the certificate presented there (tls check)
    peer_fingerprint: Callable[[str, int], str | None] | None = None
    clock: Callable[[], float] = time.time


@dataclass
class Facts:
    """What the checks found so far, for the checks after them."""

    preset: Preset | None = None
    client: LambdaClient | None = None
    instances: dict[str, Instance] = field(default_factory=dict)
    instance: Instance | None = None
    host: Host | None = None
    docker: DockerLike | None = None
    docker_info: dict[str, Any] = field(default_factory=dict)
    container: dict[str, Any] | None = None
    log_findings: list[Finding] = field(default_factory=list)
    gpu_stale: list[GpuProcess] = field(default_factory=list)  # GPU memory held by others

    # What a check needs from the checks before it (its `needs`): the runner skips it when
    # they failed, so None here means a check ran out of order; the runner reports the error
    # as that check's failure.
    def need_preset(self) -> Preset:
        return _needed(self.preset, "preset")

    def need_client(self) -> LambdaClient:
        return _needed(self.client, "lambda-key")

    def need_host(self) -> Host:
        return _needed(self.host, "host")

    def need_docker(self) -> DockerLike:
        return _needed(self.docker, "docker")


def _needed(value: _T | None, check_id: str) -> _T:
    if value is None:
        raise RuntimeError(f"doctor ran a check before the {check_id!r} check it needs")
    return value


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


def make_result(check_id: str, title: str, status: Status, evidence: Iterable[str] = (),
                fix: str = "", doc: str = "", findings: Iterable[Finding] = ()) -> CheckResult:
    """A `CheckResult` from any iterables (every check builds its result with this)."""
    return CheckResult(check_id, title, status, tuple(evidence), fix, doc, tuple(findings))
