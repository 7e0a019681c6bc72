"""`up` and `down`: ordered, idempotent steps over a Host.

`up` = get a machine (launch on Lambda, or an SSH host, or this machine) -> connect ->
registry login (only when the image needs it) -> pull -> secrets to a 0600 env file -> run the
container -> wait on `/ready`. Every step first looks at what is already there, so running `up`
again resumes instead of duplicating, and a container still loading its model is never
restarted without `--force` (the playbook: do not redeploy during the first load).

The decisions are pure functions (`container_plan.py`), getting a machine is `machines.py`,
the steps here are thin.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from intelligensi_deploy import secrets

# Re-exported: `deploy.X` stays the one place commands import these from.
from intelligensi_deploy.container_plan import (  # noqa: F401
    CONFIG_LABEL,
    CONTAINER_PORT,
    HF_CACHE_VOLUME,
    ContainerAction,
    ContainerFacts,
    container_spec,
    hf_cache_path,
    needs_registry_login,
    plan_container,
    preset_container_name,
)
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.health import ReadyStatus, fetch_ready, wait_ready
from intelligensi_deploy.machines import (  # noqa: F401
    NothingRunning,
    connect,
    connect_existing,
    connect_node,
    connect_waiting,
    ensure_ssh_key,
    provision_lambda,
    require_running,
)
from intelligensi_deploy.presets import Preset
from intelligensi_deploy.state import Deployment, StateStore

if TYPE_CHECKING:
    from intelligensi_deploy.cloud.lambda_api import LambdaClient
    from intelligensi_deploy.remote.docker import Docker
    from intelligensi_deploy.remote.host import Host

class Reporter(Protocol):
    """What `up`/`down` tell the user; the CLI renders it with rich."""

    def step(self, message: str) -> None: ...
    def detail(self, line: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def ready_status(self, status: ReadyStatus, elapsed: float) -> None: ...
    def progress_line(self, line: str) -> None: ...
        # a line of a long command's raw output (build): transient on a TTY, else dropped


class Tracker:
    """The deployment record, saved to disk on every change once it is recorded.

    A record exists only while something exists to track: a new deployment stays in memory
    until `record()` (the instance is launched, or the container and its secrets file are
    about to be created), so a failure before that leaves no phantom behind. `forget()`
    deletes the file again (the recorded instance turned out to be gone).
    """

    def __init__(self, store: StateStore, deployment: Deployment, *, recorded: bool = True
                 ) -> None:
        self.store = store
        self.recorded = recorded
        self.dep = store.save(deployment) if recorded else deployment

    def update(self, **fields: Any) -> Deployment:
        dep = self.dep.model_copy(update=fields)
        self.dep = self.store.save(dep) if self.recorded else dep
        return self.dep

    def record(self, **fields: Any) -> Deployment:
        """Start saving (now, with `fields`, and on every later change)."""
        self.recorded = True
        return self.update(**fields)

    def forget(self) -> None:
        """Delete the record and stop saving until `record()` is called again."""
        self.store.delete(self.dep.name)
        self.recorded = False


# ---------------------------------------------------------------- the container


@contextmanager
def server_url(host: Host, port: int) -> Iterator[str]:
    """A local base URL that reaches the server on the host's 127.0.0.1:port."""
    with host.forward(port) as local_port:
        yield f"http://127.0.0.1:{local_port}"


def probe_ready(host: Host, port: int) -> ReadyStatus:
    with server_url(host, port) as url:
        return fetch_ready(url)


def remote_home(host: Host) -> str:
    result = host.run(["sh", "-c", 'printf %s "$HOME"'])
    return result.stdout.strip() or "/tmp"


def deploy_container(
    preset: Preset, tracker: Tracker, host: Host, docker: Docker, ui: Reporter,
    *, force: bool, environ: Mapping[str, str], build_flags: Mapping[str, str] | None = None,
) -> ContainerAction:
    """Bring the container to the preset's configuration, reusing what is already right."""
    name = tracker.dep.name
    home = remote_home(host)
    env_file = f"{home}/.fluxdeploy/{name}.env"
    plan = None
    if preset.bundled:
        from intelligensi_deploy.bundle import build
        from intelligensi_deploy.bundle.settings import resolve

        plan = build.plan_build(resolve(preset.build, build_flags or {}, environ), environ)
    image = plan.tag if plan else preset.image
    spec = container_spec(preset, name, env_file, hf_cache_path(preset), image=image)
    found = docker.inspect(spec.name)
    existing = ContainerFacts.from_inspect(found) if found else None
    if existing is not None:
        tracker.record()  # a container of this name is there: track it
    ready = probe_ready(host, preset.port) if existing and existing.running else None
    action = plan_container(existing, spec.labels[CONFIG_LABEL], ready, force)
    if action is ContainerAction.KEEP:
        ui.step(f"Container {spec.name} is up and ready with this configuration: nothing to do")
        return action
    if action is ContainerAction.WAIT:
        ui.step(f"Container {spec.name} is still loading ({ready.describe() if ready else ''}); "
                "not restarting it (pass --force to replace it)")
        return action
    if action is ContainerAction.REFUSE:
        raise FluxdeployError(
            f"Container {spec.name} is still loading the model and the preset changed.",
            fix="Wait for it to be ready (`fluxdeploy status`), or replace it now with "
            "`fluxdeploy up --force` (the load starts over).",
            doc="still-loading",
        )
    if plan is not None:
        from intelligensi_deploy.bundle.on_host import build_on_host

        build_on_host(plan, tracker, docker, ui)
    else:
        pull_image(preset, docker, ui, environ)
    tracker.record()  # the secrets file and the container are created from here on
    ui.step("Writing secrets to a 0600 env file on the host (never on a command line)")
    host.run(["mkdir", "-p", "-m", "700", f"{home}/.fluxdeploy"])
    host.write_file(env_file, secrets.container_env_file(secrets.hf_token(environ)), 0o600)
    if spec.volumes[0][0].startswith("/"):
        host.run(["mkdir", "-p", spec.volumes[0][0]])
    if existing is not None:
        ui.step(f"Replacing container {spec.name}")
        docker.remove(spec.name)
    ui.step(f"Starting container {spec.name} ({image})")
    docker.run(spec)
    tracker.update(phase="loading", container_name=spec.name, image=image)
    return action


def registry_login(image: str, docker: Docker, ui: Reporter, environ: Mapping[str, str],
                   preset_username: str | None = None) -> None:
    """`docker login` to `image`'s registry when GHCR_TOKEN is set (token on stdin, never argv).

    The one login path: `up` before a pull, `image build --push` before a push.
    """
    from intelligensi_deploy.remote.docker_args import registry_of

    token = secrets.ghcr_token(environ)
    registry = registry_of(image)
    if not needs_registry_login(image, token):
        return
    assert token is not None
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


def pull_image(preset: Preset, docker: Docker, ui: Reporter, environ: Mapping[str, str]) -> None:
    """The preset's image on the host: kept when present and `pull: if-missing`, else pulled
    (after the registry login, when the image needs one)."""
    if preset.pull == "if-missing" and docker.image_exists(preset.image):
        ui.step(f"Image {preset.image} is present; not pulling")
        return
    registry_login(preset.image, docker, ui, environ, preset.registry_username)
    ui.step(f"Pulling {preset.image}")
    docker.pull(preset.image, on_output=ui.detail)


def wait_until_ready(
    preset: Preset, tracker: Tracker, host: Host, docker: Docker, ui: Reporter,
    timeout: float | None = None,
) -> ReadyStatus:
    """Wait on `/ready` through the host (works with the firewall closed)."""
    ui.step(f"Waiting for /ready (timeout {timeout or preset.ready_timeout:.0f} s)")
    started = time.monotonic()
    try:
        with server_url(host, preset.port) as url:
            status = wait_ready(
                lambda: fetch_ready(url),
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
    from intelligensi_deploy.redact import redact

    try:
        text = docker.logs(container, tail=lines).strip()
    except FluxdeployError:
        return
    if text:
        ui.warn(f"Last {lines} lines of the container log:")
        for line in text.splitlines()[-lines:]:
            ui.detail(redact(line))


# ---------------------------------------------------------------- up and down


def new_deployment(preset: Preset, name: str, ssh_host: str | None,
                   preset_ref: str | None = None) -> Deployment:
    ssh = preset.ssh
    ip = None
    if preset.provider == "ssh":
        ip = ssh_host or ssh.host
        if not ip:
            raise FluxdeployError(
                f"Preset {preset.name!r} needs the address of your host.",
                fix="Pass --host ADDRESS, export FLUXDEPLOY_SSH_HOST, or set ssh.host.",
                doc="presets",
            )
    return Deployment(
        name=name, preset=preset_ref or preset.name, provider=preset.provider,
        phase="launching",
        instance_type=preset.lambda_.instance_type if preset.lambda_ else None,
        ip=ip, ssh_user=ssh.user, ssh_port=ssh.port,
        ssh_key_path=os.path.expanduser(ssh.key_path),
        container_name=preset_container_name(name), image=preset.image,
        image_source=image_source(preset), port=preset.port, exposure=preset.exposure,
    )


def image_source(preset: Preset) -> str:
    """`bundled` (built on the host) or `registry` (pulled)."""
    return "bundled" if preset.bundled else "registry"


def up(
    preset: Preset, *, name: str | None, store: StateStore, ui: Reporter, force: bool = False,
    ssh_host: str | None = None, environ: Mapping[str, str] = os.environ,
    lambda_client: Callable[[], LambdaClient] | None = None,
    boot_timeout: float = 1800.0, ssh_timeout: float = 300.0, preset_ref: str | None = None,
    build_flags: Mapping[str, str] | None = None,
) -> Deployment:
    """Deploy `preset` as deployment `name` (default: the preset's name), resuming if recorded.

    `preset_ref` is how the preset is found again later (its name, or its file's absolute
    path): `status`, `doctor` and a resumed `up` reload it from there. `build_flags` are the
    `--build KEY=VALUE` overrides of the preset's build section (image: bundled).
    """
    from intelligensi_deploy.remote.docker import Docker

    name = name or preset.name
    hf = secrets.hf_token(environ)
    if preset.gated and hf is None:
        ui.warn(f"{preset.server.model} is a gated model and no HF_TOKEN is set: the server "
                "will fail with a Hugging Face 401. export HF_TOKEN=hf_... (see PLAYBOOK.md#hf-auth)")
    recorded = store.load(name)
    preset_ref = preset_ref or preset.name
    if recorded and recorded.active and recorded.preset != preset_ref and not force:
        raise FluxdeployError(
            f"Deployment {name!r} runs preset {recorded.preset!r}, not {preset_ref!r}.",
            fix="Use --name for a second deployment, `fluxdeploy down` first, or --force.",
        )
    if recorded and recorded.active:
        tracker = Tracker(store, recorded.model_copy(update={"image": preset.image,
                                                             "image_source": image_source(preset),
                                                             "port": preset.port,
                                                             "exposure": preset.exposure}))
        ui.step(f"Resuming deployment {name!r} (phase {recorded.phase})")
    else:
        ssh_host = ssh_host or environ.get("FLUXDEPLOY_SSH_HOST")
        # recorded once there is something to track (launch, container): no phantom records
        tracker = Tracker(store, new_deployment(preset, name, ssh_host, preset_ref),
                          recorded=False)
    if preset.provider == "lambda":
        from intelligensi_deploy.cloud.lambda_api import LambdaClient

        client = (lambda_client or LambdaClient.from_env)()
        if preset.scale is not None and preset.scale.nodes > 1:
            from intelligensi_deploy.cluster_up import up_cluster

            return up_cluster(preset, tracker, ui, client, force=force, environ=environ,
                              build_flags=build_flags, boot_timeout=boot_timeout,
                              ssh_timeout=ssh_timeout)
        provision_lambda(preset, tracker, ui, client, boot_timeout)
    host = connect_waiting(tracker, ui, ssh_timeout)
    try:
        tracker.update(phase="deploying")
        docker = Docker(host)
        action = deploy_container(preset, tracker, host, docker, ui, force=force, environ=environ,
                                  build_flags=build_flags)
        if action is ContainerAction.KEEP:
            return tracker.update(phase="ready")
        wait_until_ready(preset, tracker, host, docker, ui)
        return tracker.dep
    finally:
        host.close()


def down(
    dep: Deployment, *, store: StateStore, ui: Reporter,
    lambda_client: Callable[[], LambdaClient] | None = None,
) -> Deployment | None:
    """Remove the container, terminate the instance, remove the firewall rule `up` added.

    Returns the record, saved with phase `down`. A record that holds nothing (never launched,
    or already down) is forgotten instead, without asking the cloud or connecting anywhere:
    its file is deleted and None is returned.
    """
    from intelligensi_deploy.remote.docker import Docker

    if not dep.holds_resources:
        store.delete(dep.name)
        what = "nothing was launched for it" if dep.active else "it was already down"
        ui.step(f"Forgot deployment {dep.name!r} ({what}; nothing to clean up)")
        return None
    if dep.nodes:
        from intelligensi_deploy.cloud.lambda_api import LambdaClient
        from intelligensi_deploy.cluster_down import down_cluster

        return down_cluster(dep, store, ui, (lambda_client or LambdaClient.from_env)())
    tracker = Tracker(store, dep)
    if dep.ip or dep.provider == "local":
        try:
            host = connect(dep)
            try:
                docker = Docker(host)
                if docker.remove(dep.container_name):
                    ui.step(f"Removed container {dep.container_name}")
                home = remote_home(host)
                host.run(["rm", "-f", f"{home}/.fluxdeploy/{dep.name}.env"])
            finally:
                host.close()
        except FluxdeployError as exc:
            if dep.provider != "lambda":
                raise
            ui.warn(f"Could not reach the VM to remove the container ({exc.message}); "
                    "terminating the instance removes it anyway.")
    if dep.provider == "lambda":  # holds an instance or a firewall rule (else forgotten above)
        from intelligensi_deploy.cloud import provision
        from intelligensi_deploy.cloud.lambda_api import LambdaClient

        client = (lambda_client or LambdaClient.from_env)()
        if dep.firewall_rule:
            provision.remove_firewall_rule(client, dep.firewall_rule)
            ui.step(f"Removed the firewall rule for TCP {dep.port}")
        if dep.instance_id:
            if provision.terminate_if_present(client, dep.instance_id):
                ui.step(f"Terminated instance {dep.instance_id} (billing stops)")
            else:
                ui.detail(f"instance {dep.instance_id} was already gone")
        tracker.update(instance_id=None, ip=None, host_key=None, firewall_rule=None)
    return tracker.update(phase="down")
