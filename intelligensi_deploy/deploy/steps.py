"""The steps `up` runs on a host, shared by the single-node and the cluster paths.

Each step first looks at what is already there (an image present, a build already done), so
that running `up` again resumes instead of repeating. Secrets travel on stdin or in a 0600
file, never on a command line.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from intelligensi_deploy import api_keys, names, secrets
from intelligensi_deploy.bundle.build import (
    BuildPlan,
    ImageBuildError,
    build_image,
    plan_build,
    show_failure,
)
from intelligensi_deploy.bundle.settings import BuildSettings, resolve, resume
from intelligensi_deploy.container_plan import needs_registry_login
from intelligensi_deploy.deploy.reporter import Reporter
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.health import ReadyStatus, fetch_ready, server_url, wait_ready
from intelligensi_deploy.presets import Preset
from intelligensi_deploy.redact import redact
from intelligensi_deploy.remote.docker import Docker
from intelligensi_deploy.remote.docker_args import registry_of
from intelligensi_deploy.remote.host_protocol import Host
from intelligensi_deploy.remote.secret_volume import write_secret
from intelligensi_deploy.state import Tracker, build_log_path


def remote_home(host: Host) -> str:
    """The host user's home directory (where the secrets folder lives)."""
    result = host.run(["sh", "-c", 'printf %s "$HOME"'])
    return result.stdout.strip() or "/tmp"


def bundled_plan(preset: Preset, build_flags: Mapping[str, str] | None,
                 environ: Mapping[str, str],
                 recorded: Mapping[str, Any] | None = None) -> BuildPlan | None:
    """The bundled image's build plan (its content-hash tag), or None for a registry image;
    `recorded`: a resumed deployment's build record (bundle/settings.py `resume`)."""
    settings = build_settings(preset, build_flags, environ, recorded)
    return None if settings is None else plan_build(settings, environ)


def build_settings(preset: Preset, build_flags: Mapping[str, str] | None,
                   environ: Mapping[str, str],
                   recorded: Mapping[str, Any] | None = None) -> BuildSettings | None:
    """The build settings in effect: flag > variable > recorded (preset unchanged) > preset."""
    if not preset.bundled:
        return None
    return resolve(resume(preset.build, recorded), build_flags or {}, environ)


def registry_login(image: str, docker: Docker, ui: Reporter, environ: Mapping[str, str],
                   preset_username: str | None = None) -> None:
    """`docker login` to `image`'s registry when GHCR_TOKEN is set (token on stdin, never argv).

    The one login path: `up` before a pull, `image build --push` before a push.
    """
    token = secrets.ghcr_token(environ)
    registry = registry_of(image)
    if token is None or not needs_registry_login(image, token):
        return
    user = secrets.ghcr_username(environ) or preset_username
    if not user:
        raise FluxdeployError(
            f"{secrets.GHCR_TOKEN_NAME} is set but no user name for {registry}.",
            fix=f"export {secrets.GHCR_USERNAME_NAME}=<your GitHub user> or set "
            "registry_username in the preset.",
            doc="ghcr-auth",
        )
    ui.step(f"Logging in to {registry} as {user} (token on stdin)")
    docker.login(registry, user, token.value)


def pull_image(preset: Preset, docker: Docker, ui: Reporter, environ: Mapping[str, str]) -> str:
    """The preset's image on the host: kept when present and `pull: if-missing`, else pulled
    (after the registry login, when the image needs one). Returns `present` or `pulled`."""
    if preset.pull == "if-missing" and docker.image_exists(preset.image):
        ui.step(f"Image {preset.image} is present; not pulling")
        return "present"
    registry_login(preset.image, docker, ui, environ, preset.registry_username)
    ui.step(f"Pulling {preset.image}")
    docker.pull(preset.image, on_output=ui.detail)
    return "pulled"


def image_on_host(preset: Preset, plan: BuildPlan | None, tracker: Tracker, docker: Docker,
                  ui: Reporter, environ: Mapping[str, str]) -> str:
    """The bundled image built on the host (`plan`), or the preset's image pulled there.
    Returns how: `present`, `built` or `pulled`."""
    if plan is not None:
        return build_on_host(plan, tracker, docker, ui)
    return pull_image(preset, docker, ui, environ)


def build_on_host(plan: BuildPlan, tracker: Tracker, docker: Docker, ui: Reporter) -> str:
    """The bundled image on the host: reuse its tag, or stream the context and build it.

    A failed build records its last lines next to the deployment's state file (0600,
    redacted: `doctor` reads them back) and shows them; a good build removes that record.
    """
    log_path = build_log_path(tracker.store, tracker.dep.name)
    ui.step(f"Bundled server image {plan.tag} (content hash of the server and build args)")
    size = sum(f.path.stat().st_size for f in plan.files)
    try:
        if docker.image_exists(plan.tag):
            ui.detail(f"{docker.host.label} has {plan.tag}: nothing to build")
            log_path.unlink(missing_ok=True)
            return "present"
        ui.detail(f"building on {docker.host.label}: streaming the context ({len(plan.files)} "
                  f"files, {size / 1e6:.1f} MB) to `docker build -` over the open connection")
        started = time.monotonic()
        progress = build_image(docker, plan, on_event=lambda e: ui.detail(e.describe()),
                               on_line=ui.progress_line)
    except ImageBuildError as exc:
        write_private(log_path, "\n".join(exc.log) + "\n")
        # recorded (even for ssh/local, where nothing else exists yet): `doctor` finds the
        # deployment and its build log; `down` forgets a record that holds nothing
        tracker.record(phase="failed", image=plan.tag)
        show_failure(ui, exc)
        raise
    log_path.unlink(missing_ok=True)
    ui.detail(f"built {plan.tag} in {time.monotonic() - started:.0f} s: {progress.summary()}")
    return "built"


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600 from the start, redacted."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file was already there
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(redact(text))


def wait_until_ready(
    preset: Preset, tracker: Tracker, host: Host, docker: Docker, ui: Reporter,
    timeout: float | None = None,
) -> ReadyStatus:
    """Wait on `/ready` through the host (works with the firewall closed)."""
    ui.step(f"Waiting for /ready (timeout {timeout or preset.ready_timeout:.0f} s)")
    started = time.monotonic()
    try:
        with server_url(host, preset.port, tracker.dep.tls) as server:
            status = wait_ready(
                lambda: fetch_ready(server),
                timeout or preset.ready_timeout,
                on_status=lambda s: ui.ready_status(s, time.monotonic() - started),
            )
    except FluxdeployError:
        tracker.update(phase="failed")
        show_last_logs(docker, tracker.dep.container_name, ui)
        raise
    tracker.update(phase="ready")
    return status


def show_last_logs(docker: Docker, container: str, ui: Reporter, lines: int = 30) -> None:
    """The container log's last lines, redacted, as warnings' details (after a failure)."""
    try:
        text = docker.logs(container, tail=lines).strip()
    except FluxdeployError:
        return
    if text:
        ui.warn(f"Last {lines} lines of the container log:")
        for line in text.splitlines()[-lines:]:
            ui.detail(redact(line))


def server_api_key(auth: bool, tracker: Tracker, docker: Docker, ui: Reporter,
                   image: str) -> None:
    """With `auth` on: the deployment's key (kept beside the record on this machine, created
    on the first `up`) written to the server's secrets volume on `docker`'s host (a cluster's
    head), whatever `up` decided about the container, so that `up` puts right a key lost
    here or changed there."""
    tracker.update(auth=auth)
    if not auth:
        return
    key = api_keys.ensure_key(tracker.store.root, tracker.dep.name)
    ui.step("Writing the API key to the server's secrets volume (0600; `fluxdeploy key show` "
            "prints it)")
    write_secret(docker, image, names.secrets_volume(tracker.dep.name), names.API_KEYS_FILE,
                 api_keys.keys_file(key))
