"""The watchdog container a deployment with limits runs beside its server, as pure argv
(server/flux_server/watchdog.py says what it does, and why it is a container of its own).

Nothing secret is on its command line: the Lambda API key reaches it in its own 0600 env file
(`~/.fluxdeploy/<name>-watchdog.env`), which holds that key and nothing else, and which exists
only while a limit is set. Lambda keys have no scopes: a key on the VM can do anything the
account can; a preset with no limits puts nothing on the VM.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from intelligensi_deploy import names
from intelligensi_deploy.preset_limits import LimitsSection
from intelligensi_deploy.secrets import LAMBDA_KEY_NAME, Token

DEFAULT_INTERVAL_S = 30.0


@dataclass(frozen=True)
class WatchPlan:
    """What the watchdog of one deployment watches and what it ends."""

    deployment: str
    image: str
    port: int
    limits: LimitsSection
    launched_at: float
    instances: tuple[str, ...]
    rules: tuple[str, ...]  # legacy firewall rule descriptions to remove before terminating
    api_url: str | None = None  # LAMBDA_API_URL when set (the default is Lambda's)
    interval_s: float = DEFAULT_INTERVAL_S
    ruleset: str | None = None  # the deployment's firewall ruleset, deleted after terminating
    https: bool = False  # the server speaks HTTPS (a public endpoint)


def watchdog_env(plan: WatchPlan) -> dict[str, str]:
    """The watchdog's settings (none of them secret)."""
    env = {
        "FLUXDEPLOY_WATCH_NAME": plan.deployment,
        "FLUXDEPLOY_WATCH_PORT": str(plan.port),
        "FLUXDEPLOY_WATCH_IDLE_S": _seconds(plan.limits.idle),
        "FLUXDEPLOY_WATCH_MAX_S": _seconds(plan.limits.max_duration),
        "FLUXDEPLOY_WATCH_LAUNCHED_AT": f"{plan.launched_at:.3f}",
        "FLUXDEPLOY_WATCH_INSTANCES": ",".join(plan.instances),
        "FLUXDEPLOY_WATCH_RULES": json.dumps(list(plan.rules)),
        "FLUXDEPLOY_WATCH_INTERVAL_S": f"{plan.interval_s:g}",
        "FLUXDEPLOY_WATCH_RULESET": plan.ruleset or "",
    }
    if plan.api_url:
        env["LAMBDA_API_URL"] = plan.api_url
    if plan.https:
        env["FLUX_SERVER_TLS"] = "1"
    return env


def watchdog_env_file(api_key: Token) -> bytes:
    """The body of the watchdog's 0600 env file: the Lambda API key, and only that."""
    return f"{LAMBDA_KEY_NAME}={api_key.value}\n".encode()


def watchdog_run_args(plan: WatchPlan, env_file: str) -> list[str]:
    """`docker run -d` (the args after `docker`) for the watchdog, labelled with a digest of
    its whole configuration (a changed limit or node list replaces it)."""
    env = watchdog_env(plan)
    args = ["run", "-d", "--name", names.watchdog_name(plan.deployment),
            "--restart", "unless-stopped", "--network", "host", "--env-file", env_file]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    digest = hashlib.sha256(json.dumps([plan.image, env_file, sorted(env.items())]).encode()
                            ).hexdigest()[:16]
    args += ["--label", f"{names.DEPLOYMENT_LABEL}={plan.deployment}",
             "--label", f"{names.ROLE_LABEL}=watchdog",
             "--label", f"{names.CONFIG_LABEL}={digest}",
             plan.image, "python", "-m", "flux_server.watchdog"]
    return args


def config_digest(args: Sequence[str]) -> str:
    """The digest `watchdog_run_args` put in its config label."""
    prefix = f"{names.CONFIG_LABEL}="
    return next(a[len(prefix):] for a in args if a.startswith(prefix))


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
