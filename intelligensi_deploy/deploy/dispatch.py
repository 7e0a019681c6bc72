"""`up` and `down` for any preset: the record (new, or resumed), then the single-machine path
(single.py) or the cluster path (cluster_up.py / cluster_down.py, `scale.nodes` > 1)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from intelligensi_deploy import names, secrets
from intelligensi_deploy.cloud.lambda_api import LambdaClient
from intelligensi_deploy.deploy.cluster_down import down_cluster
from intelligensi_deploy.deploy.cluster_up import up_cluster
from intelligensi_deploy.deploy.file_system import settle_file_system
from intelligensi_deploy.deploy.launch import Approve
from intelligensi_deploy.deploy.reporter import Reporter
from intelligensi_deploy.deploy.single import down_single, up_single
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.preset_limits import resolve_limits
from intelligensi_deploy.presets import Preset
from intelligensi_deploy.state import Deployment, StateStore, Tracker


def new_deployment(preset: Preset, name: str, ssh_host: str | None,
                   preset_ref: str | None = None) -> Deployment:
    """The record of a deployment not yet launched (kept in memory until something exists)."""
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
        container_name=names.container_name(name), image=preset.image,
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
    build_flags: Mapping[str, str] | None = None, approve: Approve | None = None,
    limit_flags: Mapping[str, str | None] | None = None,
    wait_capacity_s: float | None = None,
) -> Deployment:
    """Deploy `preset` as deployment `name` (default: the preset's name), resuming if recorded.

    `preset_ref` is how the preset is found again later (its name, or its file's absolute
    path): `status`, `doctor` and a resumed `up` reload it from there. `build_flags` are the
    `--build KEY=VALUE` overrides of the preset's build section (image: bundled). `approve`
    is asked after the price line, before an instance is launched (None: go ahead).
    `limit_flags` (`idle`, `max_duration`: `--limit-idle`, `--limit-max`) override the
    preset's limits, as FLUXDEPLOY_LIMIT_* do. `wait_capacity_s`: wait for capacity in the
    regions the preset (and its file system) allow, asking that often (one VM only).
    """
    limits = resolve_limits(preset.limits, limit_flags or {}, environ,
                            provider=preset.provider, ready_timeout=preset.ready_timeout)
    name = name or preset.name
    if preset.gated and secrets.hf_token(environ) is None:
        ui.warn(f"{preset.server.model} is a gated model and no HF_TOKEN is set: the server "
                "will fail with a Hugging Face 401. export HF_TOKEN=hf_... (see PLAYBOOK.md#hf-auth)")
    tracker = _tracker(preset, name, store, ui, force=force, preset_ref=preset_ref or preset.name,
                       ssh_host=ssh_host or environ.get("FLUXDEPLOY_SSH_HOST"))
    tracker.update(idle_limit_s=limits.idle, max_duration_s=limits.max_duration)
    client = (lambda_client or LambdaClient.from_env)() if preset.provider == "lambda" else None
    if client is not None and preset.scale is not None and preset.scale.nodes > 1:
        return up_cluster(preset, tracker, ui, client, force=force, environ=environ,
                          build_flags=build_flags, boot_timeout=boot_timeout,
                          ssh_timeout=ssh_timeout, approve=approve, limits=limits)
    return up_single(preset, tracker, ui, client, force=force, environ=environ,
                     build_flags=build_flags, boot_timeout=boot_timeout, ssh_timeout=ssh_timeout,
                     approve=approve, limits=limits, wait_capacity_s=wait_capacity_s)


def _tracker(preset: Preset, name: str, store: StateStore, ui: Reporter, *, force: bool,
             preset_ref: str, ssh_host: str | None) -> Tracker:
    """The recorded deployment to resume, or a new one (recorded once something exists to
    track: a launch, a container; so a failure before that leaves no phantom record)."""
    recorded = store.load(name)
    if recorded and recorded.active and recorded.preset != preset_ref and not force:
        raise FluxdeployError(
            f"Deployment {name!r} runs preset {recorded.preset!r}, not {preset_ref!r}.",
            fix="Use --name for a second deployment, `fluxdeploy down` first, or --force.",
        )
    if recorded and recorded.active:
        ui.step(f"Resuming deployment {name!r} (phase {recorded.phase})")
        # a bundled image is recorded by its built tag: `up` records a new one when it
        # builds or runs another, never "bundled" in its place (the tag is still on the host)
        built = preset.bundled and recorded.image_source == "bundled" and recorded.image
        return Tracker(store, recorded.model_copy(update={
            "image": recorded.image if built else preset.image,
            "image_source": image_source(preset), "port": preset.port,
            "exposure": preset.exposure}))
    return Tracker(store, new_deployment(preset, name, ssh_host, preset_ref), recorded=False)


def down(
    dep: Deployment, *, store: StateStore, ui: Reporter,
    lambda_client: Callable[[], LambdaClient] | None = None,
    delete_file_system: bool = False,
) -> Deployment | None:
    """Remove the container, terminate the instance, remove the firewall rule `up` added;
    keep the file system unless `delete_file_system`.

    Returns the record, saved with phase `down`. A record that holds nothing (never launched,
    or already down) is forgotten instead, without asking the cloud or connecting anywhere:
    its file is deleted and None is returned. With `delete_file_system`, its file system
    (which outlives the instances) is deleted first.
    """
    if delete_file_system and dep.file_system and not dep.holds_resources:
        settle_file_system(Tracker(store, dep), ui, (lambda_client or LambdaClient.from_env)(),
                           delete=True)
        dep = store.load(dep.name) or dep
    if not dep.holds_resources:
        store.delete(dep.name)
        what = "nothing was launched for it" if dep.active else "it was already down"
        ui.step(f"Forgot deployment {dep.name!r} ({what}; nothing to clean up)")
        return None
    client = (lambda_client or LambdaClient.from_env)() if dep.provider == "lambda" else None
    if dep.nodes and client is not None:
        done = down_cluster(dep, store, ui, client)
    else:
        done = down_single(dep, Tracker(store, dep), ui, client)
    tracker = Tracker(store, done)
    settle_file_system(tracker, ui, client, delete_file_system)
    return tracker.dep
