"""`fluxdeploy doctor`, the command's entry (`main`, called by cli.py): the real dependencies
(presets, SSH or this machine, Docker, the Lambda API, HTTP) wired to the checks, which
`doctor.runner` runs, and the output. The only module of doctor/ with side effects beyond the
injected ones. It loads httpx, paramiko and pydantic: cli.py imports it only when doctor runs
(the quick `fluxdeploy diagnose` has its own entry, `doctor.diagnose_command`).
"""

from __future__ import annotations

import json
import os
import ssl
import sys
from typing import Any

import httpx

from intelligensi_deploy import machines
from intelligensi_deploy.api_keys import bearer, load_key
from intelligensi_deploy.cloud.lambda_api import LambdaClient
from intelligensi_deploy.doctor.check_types import DoctorDeps, HttpAnswer
from intelligensi_deploy.doctor.report import (
    EXIT_COULD_NOT_RUN,
    could_not_run_json,
    doctor_exit_code,
    doctor_json,
    print_rich,
    render_doctor,
)
from intelligensi_deploy.doctor.runner import run_checks
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.presets import load_preset
from intelligensi_deploy.redact import redact
from intelligensi_deploy.remote.docker import Docker
from intelligensi_deploy.state import Deployment, StateStore, build_log_path
from intelligensi_deploy.tls_pin import pinned_context, presented_certificate


def http_get(url: str, timeout: float) -> HttpAnswer:
    """One GET; the JSON body when there is one. Raises httpx errors when nothing answers."""
    return keyed_get(url, timeout, None)


def keyed_get(url: str, timeout: float, key: str | None,
              verify: ssl.SSLContext | bool = True) -> HttpAnswer:
    """One GET sending `key` as the bearer token (None: no Authorization header), trusting
    what `verify` says (an HTTPS deployment: its pinned certificate only); the JSON body when
    there is one. Raises httpx errors when nothing answers."""
    response = httpx.get(url, timeout=timeout, headers=bearer(key), verify=verify)
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    return HttpAnswer(response.status_code, body)


def build_deps(deployment: Deployment) -> DoctorDeps:
    """The real dependencies for `deployment`: presets, SSH or this machine, Docker, Lambda."""
    lambda_client = LambdaClient.from_env if deployment.provider == "lambda" else None
    verify = pinned_context(deployment.tls.cert_pem) if deployment.tls else True
    return DoctorDeps(
        deployment=deployment,
        load_preset=load_preset,
        connect=lambda: machines.connect(deployment),
        docker_for=Docker,
        http_get=lambda url, timeout: keyed_get(url, timeout, None, verify),
        lambda_client=lambda_client,
        environ=os.environ,
        build_log=lambda: _read_build_log(deployment),
        connect_node=lambda node: machines.connect_node(deployment, node),
        keyed_get=lambda url, timeout, key: keyed_get(url, timeout, key, verify),
        api_key=lambda: _api_key(deployment),
        peer_fingerprint=presented_certificate,
    )


def _api_key(deployment: Deployment) -> str | None:
    """This machine's key of the deployment (api_keys.py), None when it holds none."""
    token = load_key(StateStore().root, deployment.name)
    return token.value if token else None


def _read_build_log(deployment: Deployment) -> str | None:
    """The record of the deployment's last failed build (`up` writes it), if any."""
    try:
        return build_log_path(StateStore(), deployment.name).read_text(encoding="utf-8")
    except OSError:
        return None


def main(name: str | None, *, as_json: bool = False) -> int:
    """Run doctor on the named (or only / most recent) deployment; return the exit code."""
    try:
        deployment = StateStore().resolve(name)
        machines.require_running(deployment)  # a record that holds nothing has nothing to examine
    except FluxdeployError as exc:
        if as_json:
            print(json.dumps(could_not_run_json(redact(exc.message), exc.fix or "",
                                                exc.doc or ""), indent=2))
        else:
            print(f"doctor could not run: {redact(str(exc))}", file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    if not as_json:
        print(f"doctor: deployment {deployment.name!r} ({deployment.provider})", file=sys.stderr)
    report = run_checks(build_deps(deployment))
    if as_json:
        print(json.dumps(doctor_json(report), indent=2))
    else:
        print_rich(render_doctor(report))
    return doctor_exit_code(report)
