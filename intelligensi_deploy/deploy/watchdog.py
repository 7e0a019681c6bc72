"""`up`'s watchdog step: the container that enforces the deployment's limits on the VM
(watchdog_plan.py builds it; server/flux_server/watchdog.py is what runs). Kept when it runs
this very configuration, replaced when the limits, the nodes or the key changed, removed with
its key file when no limit is left."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from intelligensi_deploy import names, secrets
from intelligensi_deploy.deploy.reporter import Reporter
from intelligensi_deploy.deploy.steps import remote_home
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.remote.docker import Docker
from intelligensi_deploy.remote.host_protocol import Host
from intelligensi_deploy.watchdog_plan import (
    WatchPlan,
    config_digest,
    watchdog_env_file,
    watchdog_run_args,
)


def ensure_watchdog(plan: WatchPlan, host: Host, docker: Docker, ui: Reporter,
                    environ: Mapping[str, str]) -> None:
    """The watchdog of `plan` running on `host` (or none, and no key file, without limits)."""
    container = names.watchdog_name(plan.deployment)
    env_file = names.env_file_path(remote_home(host), plan.deployment, watchdog=True)
    if not plan.limits.any:
        remove_watchdog(plan.deployment, host, docker, ui)
        return
    key = secrets.lambda_api_key(environ)
    if key is None:
        raise FluxdeployError(
            "The preset's limits need the Lambda API key on the VM (its watchdog terminates "
            f"the instance), and {secrets.LAMBDA_KEY_NAME} is not set.",
            fix=f"export {secrets.LAMBDA_KEY_NAME}=..., or turn the limits off "
                "(--limit-idle off --limit-max off).", doc="limits")
    body = watchdog_env_file(key)
    args = watchdog_run_args(plan, env_file)
    found = docker.inspect(container)
    same_key = host.run(["cmp", "-s", env_file, "-"], stdin=body, timeout=30).ok
    if found and _running(found) and _digest(found) == config_digest(args) and same_key:
        ui.step(f"Watchdog {container} runs these limits: {plan.limits.describe()}")
        return
    host.run(["mkdir", "-p", "-m", "700", f"{remote_home(host)}/{names.SECRETS_DIR}"])
    host.write_file(env_file, body, 0o600)  # the API key: on stdin, into a 0600 file
    if found:
        docker.remove(container)
    result = docker.run_docker(args, timeout=300)
    if not result.ok:
        raise FluxdeployError(
            f"The watchdog {container} did not start: {result.output.strip()[-400:]}",
            fix="Read the message above; without it the limits are not enforced. "
                "`fluxdeploy up` again retries.", doc="limits")
    ui.step(f"Watchdog {container} started on the VM: {plan.limits.describe()}")


def remove_watchdog(deployment: str, host: Host, docker: Docker, ui: Reporter | None = None
                    ) -> None:
    """The watchdog container and its key file, gone (both may already be)."""
    container = names.watchdog_name(deployment)
    if docker.remove(container) and ui is not None:
        ui.step(f"Removed the watchdog {container}")
    host.run(["rm", "-f", names.env_file_path(remote_home(host), deployment, watchdog=True)])


def _running(found: Mapping[str, Any]) -> bool:
    return bool((found.get("State") or {}).get("Running"))


def _digest(found: Mapping[str, Any]) -> str | None:
    label = ((found.get("Config") or {}).get("Labels") or {}).get(names.CONFIG_LABEL)
    return str(label) if label is not None else None
