"""`fluxdeploy doctor` and `fluxdeploy diagnose`: the real dependencies wired to the checks,
and the output. The only module of doctor/ with side effects beyond the injected ones.

doctor's checks are imported inside `main`, so `diagnose` (a quick command) does not load them.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from intelligensi_deploy.doctor.diagnose import diagnose
from intelligensi_deploy.doctor.report import (
    EXIT_COULD_NOT_RUN,
    could_not_run_json,
    diagnose_exit_code,
    doctor_exit_code,
    doctor_json,
    findings_json,
    render_doctor,
    render_findings,
)
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.redact import redact

if TYPE_CHECKING:
    from intelligensi_deploy.doctor.checks import DoctorDeps, HttpAnswer


def http_get(url: str, timeout: float) -> HttpAnswer:
    """One GET; the JSON body when there is one. Raises httpx errors when nothing answers."""
    import httpx

    from intelligensi_deploy.doctor.checks import HttpAnswer

    response = httpx.get(url, timeout=timeout)
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    return HttpAnswer(response.status_code, body)


def build_deps(deployment: Any) -> DoctorDeps:
    """The real dependencies for `deployment`: presets, SSH or this machine, Docker, Lambda."""
    from intelligensi_deploy import machines
    from intelligensi_deploy.doctor.checks import DoctorDeps
    from intelligensi_deploy.presets import load_preset
    from intelligensi_deploy.remote.docker import Docker

    lambda_client = None
    if deployment.provider == "lambda":
        from intelligensi_deploy.cloud.lambda_api import LambdaClient

        lambda_client = LambdaClient.from_env
    return DoctorDeps(
        deployment=deployment,
        load_preset=load_preset,
        connect=lambda: machines.connect(deployment),
        docker_for=Docker,
        http_get=http_get,
        lambda_client=lambda_client,
        environ=os.environ,
        build_log=lambda: _read_build_log(deployment),
        connect_node=lambda node: machines.connect_node(deployment, node),
    )


def _read_build_log(deployment: Any) -> str | None:
    """The record of the deployment's last failed build (`up` writes it), if any."""
    from intelligensi_deploy.state import StateStore, build_log_path

    try:
        return build_log_path(StateStore(), deployment.name).read_text(encoding="utf-8")
    except OSError:
        return None


def _print(renderable: Any) -> None:
    from rich.console import Console

    Console(highlight=False).print(renderable)


def main(name: str | None, *, as_json: bool = False) -> int:
    """Run doctor on the named (or only / most recent) deployment; return the exit code."""
    from intelligensi_deploy.state import StateStore

    try:
        deployment = StateStore().resolve(name)
        from intelligensi_deploy.machines import require_running

        require_running(deployment)  # a record that holds nothing has nothing to examine
    except FluxdeployError as exc:
        if as_json:
            print(json.dumps(could_not_run_json(redact(exc.message), exc.fix or "",
                                                exc.doc or ""), indent=2))
        else:
            print(f"doctor could not run: {redact(str(exc))}", file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    if not as_json:
        print(f"doctor: deployment {deployment.name!r} ({deployment.provider})", file=sys.stderr)
    from intelligensi_deploy.doctor.runner import run_checks

    report = run_checks(build_deps(deployment))
    if as_json:
        print(json.dumps(doctor_json(report), indent=2))
    else:
        _print(render_doctor(report))
    return doctor_exit_code(report)


def diagnose_main(file: str, *, as_json: bool = False) -> int:
    """Diagnose a saved log (`-`: stdin); exit 1 when a finding is an error, 2 when unreadable."""
    try:
        if file == "-":
            text = sys.stdin.read()
        else:
            with open(file, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
    except OSError as exc:
        print(f"diagnose: cannot read {file}: {exc.strerror}", file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    findings = diagnose(text)
    if as_json:
        print(json.dumps(findings_json(findings), indent=2))
    else:
        _print(render_findings(findings))
    return diagnose_exit_code(findings)
