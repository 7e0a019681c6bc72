"""The data of doctor's checks: what a check gets (`DoctorDeps`, `Facts`), what it gives
(`CheckResult`) and the report. No behaviour beyond building results."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from intelligensi_deploy.diagnosis.findings import Finding

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
    connect_node: Callable[[Any], Any] | None = None  # state.NodeRecord -> Host (clusters)
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


def make_result(check_id: str, title: str, status: Status, evidence: Iterable[str] = (),
                fix: str = "", doc: str = "", findings: Iterable[Finding] = ()) -> CheckResult:
    """A `CheckResult` from any iterables (every check builds its result with this)."""
    return CheckResult(check_id, title, status, tuple(evidence), fix, doc, tuple(findings))
