"""`up` and `down` for one machine (a Lambda VM, your SSH host, or this machine).

`up` = get the machine (launch.py) -> connect -> image (pull after a registry login only when
the image needs one, or build the bundled image on the host) -> secrets to a 0600 env file ->
run the container -> wait on `/ready`. A container still loading its model is never
restarted without `--force` (the playbook: do not redeploy during the first load).
The decisions are pure functions (container_plan.py); the steps here are thin.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from intelligensi_deploy import names, secrets
from intelligensi_deploy.bundle.settings import record_of
from intelligensi_deploy.cloud import provision
from intelligensi_deploy.cloud.lambda_api import LambdaClient
from intelligensi_deploy.container_plan import (
    ContainerAction,
    ContainerFacts,
    container_spec,
    hf_cache_path,
    plan_container,
)
from intelligensi_deploy.deploy.certificate import pin, running_tls, server_certificate
from intelligensi_deploy.deploy.firewall import delete_deployment_ruleset, remove_legacy_rules
from intelligensi_deploy.deploy.launch import Approve, connect_waiting, provision_lambda
from intelligensi_deploy.deploy.reporter import Reporter
from intelligensi_deploy.deploy.steps import (
    build_settings,
    bundled_plan,
    image_on_host,
    remote_home,
    server_api_key,
    wait_until_ready,
)
from intelligensi_deploy.deploy.watchdog import ensure_watchdog, remove_watchdog
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.health import probe_ready
from intelligensi_deploy.machines import connect
from intelligensi_deploy.preset_limits import LimitsSection
from intelligensi_deploy.presets import Preset
from intelligensi_deploy.remote.docker import Docker
from intelligensi_deploy.remote.host_protocol import Host
from intelligensi_deploy.remote.secret_volume import remove_volume
from intelligensi_deploy.state import Deployment, Tracker
from intelligensi_deploy.timeline import server_timeline
from intelligensi_deploy.watchdog_plan import DEFAULT_INTERVAL_S, WatchPlan


def up_single(preset: Preset, tracker: Tracker, ui: Reporter, client: LambdaClient | None, *,
              force: bool, environ: Mapping[str, str], build_flags: Mapping[str, str] | None,
              boot_timeout: float, ssh_timeout: float, approve: Approve | None = None,
              limits: LimitsSection | None = None,
              wait_capacity_s: float | None = None) -> Deployment:
    """The machine (launched on Lambda when `client` is given), its container, the watchdog
    of its `limits` (Lambda only), `/ready`; where the time went (timeline.py)."""
    timeline: dict[str, Any] = {}
    started = time.monotonic()
    if client is not None:
        launched_before = tracker.dep.instance_id
        provision_lambda(preset, tracker, ui, client, boot_timeout, approve,
                         limits or LimitsSection(), wait_capacity_s)
        if tracker.dep.instance_id != launched_before:  # a new instance: its launch + boot
            timeline["launch"] = time.monotonic() - started
    started = time.monotonic()
    host = connect_waiting(tracker, ui, ssh_timeout)
    timeline["ssh"] = time.monotonic() - started
    try:
        tracker.update(phase="deploying")
        docker = Docker(host)
        try:
            action, image = deploy_container(preset, tracker, host, docker, ui, force=force,
                                             environ=environ, build_flags=build_flags,
                                             timeline=timeline)
        except BaseException:
            if client is not None and limits is not None and limits.any:
                ui.warn("The limits are not enforced yet (the watchdog starts with the "
                        "server): the instance bills until `fluxdeploy up` succeeds or "
                        "`fluxdeploy down`.")
            raise
        if client is not None:
            ensure_watchdog(single_watch_plan(tracker.dep, image, limits or LimitsSection(),
                                              environ), host, docker, ui, environ)
        if action is ContainerAction.KEEP:
            return tracker.update(phase="ready")
        ready = wait_until_ready(preset, tracker, host, docker, ui)
        timeline |= server_timeline(ready.phases, ready.progress)
        if tracker.dep.file_system:
            timeline["file_system"] = tracker.dep.file_system
        return tracker.update(timeline=timeline)
    finally:
        host.close()


def deploy_container(
    preset: Preset, tracker: Tracker, host: Host, docker: Docker, ui: Reporter,
    *, force: bool, environ: Mapping[str, str], build_flags: Mapping[str, str] | None = None,
    timeline: dict[str, Any] | None = None,
) -> tuple[ContainerAction, str]:
    """Bring the container to the preset's configuration, reusing what is already right.
    Returns what was done and the image the container runs; `timeline` gets the image
    step's seconds and how (`present`, `pulled`, `built`)."""
    name = tracker.dep.name
    home = remote_home(host)
    env_file = names.env_file_path(home, name)
    recorded = tracker.dep.build_settings
    settings = build_settings(preset, build_flags, environ, recorded)
    plan = bundled_plan(preset, build_flags, environ, recorded)
    image = plan.tag if plan else preset.image
    built = {"build_settings": record_of(preset.build, settings)} if settings else {}
    spec = container_spec(preset, name, env_file, hf_cache_path(preset, name), image=image)
    found = docker.inspect(spec.name)
    existing = ContainerFacts.from_inspect(found) if found else None
    if existing is not None:
        tracker.record()  # a container of this name is there: track it
    serving = running_tls(docker, spec.name, found) if existing and existing.running else None
    ready = probe_ready(host, preset.port, serving) if existing and existing.running else None
    action = plan_container(existing, spec.labels[names.CONFIG_LABEL], ready, force)
    if action in (ContainerAction.KEEP, ContainerAction.WAIT):
        if action is ContainerAction.KEEP:
            ui.step(f"Container {spec.name} is up and ready with this configuration: nothing "
                    "to do")
        else:
            ui.step(f"Container {spec.name} is still loading "
                    f"({ready.describe() if ready else ''}); not restarting it (pass --force to "
                    "replace it)")
        pin(tracker, serving.cert_pem if serving else None)
        server_api_key(preset.auth_on, tracker, docker, ui, image)
        tracker.update(image=image, **built)  # what runs, kept as it is
        return action, image
    if action is ContainerAction.START:
        ui.step(f"Container {spec.name} is stopped with this configuration: starting it "
                "(docker start; nothing to build or pull)")
        docker.start(spec.name)
        tracker.update(phase="loading", container_name=spec.name, image=image, **built)
        return action, image
    if action is ContainerAction.REFUSE:
        raise FluxdeployError(
            f"Container {spec.name} is still loading the model and the preset changed.",
            fix="Wait for it to be ready (`fluxdeploy status`), or replace it now with "
            "`fluxdeploy up --force` (the load starts over).",
            doc="still-loading",
        )
    started = time.monotonic()
    how = image_on_host(preset, plan, tracker, docker, ui, environ)
    if timeline is not None:
        timeline.update(image=time.monotonic() - started, image_how=how)
    tracker.record()  # the secrets file and the container are created from here on
    ui.step("Writing secrets to a 0600 env file on the host (never on a command line)")
    host.run(["mkdir", "-p", "-m", "700", f"{home}/{names.SECRETS_DIR}"])
    host.write_file(env_file, secrets.container_env_file(secrets.hf_token(environ)), 0o600)
    server_api_key(preset.auth_on, tracker, docker, ui, image)
    server_certificate(preset.tls_on, tracker, docker, ui, image)
    if spec.volumes[0][0].startswith("/"):
        host.run(["mkdir", "-p", spec.volumes[0][0]])
    if existing is not None:
        ui.step(f"Replacing container {spec.name}")
        docker.remove(spec.name)
    ui.step(f"Starting container {spec.name} ({image})")
    docker.run(spec)
    tracker.update(phase="loading", container_name=spec.name, image=image, **built)
    return action, image


def single_watch_plan(dep: Deployment, image: str, limits: LimitsSection,
                      environ: Mapping[str, str]) -> WatchPlan:
    """What the watchdog of a one-VM deployment ends: its instance, then its firewall
    ruleset (and an earlier fluxdeploy's legacy port rule, before terminating)."""
    return WatchPlan(
        deployment=dep.name, image=image, port=dep.port, limits=limits,
        launched_at=dep.launched_at or time.time(), instances=(dep.instance_id or "",),
        rules=(names.rule_description(dep.name),) if dep.firewall_rule else (),
        api_url=environ.get("LAMBDA_API_URL") or None,
        interval_s=float(environ.get("FLUXDEPLOY_WATCH_INTERVAL_S") or DEFAULT_INTERVAL_S),
        ruleset=dep.firewall_ruleset_id, https=dep.tls is not None)


def down_single(dep: Deployment, tracker: Tracker, ui: Reporter,
                client: LambdaClient | None) -> Deployment:
    """Remove the container and its secrets file, then (Lambda, `client` given) the legacy
    firewall rule an earlier `up` added, the instance, and once it is terminated the
    deployment's firewall ruleset. An unreachable VM is terminated anyway."""
    if dep.ip or dep.provider == "local":
        try:
            if remove_container(dep):
                ui.step(f"Removed container {dep.container_name}")
        except FluxdeployError as exc:
            if dep.provider != "lambda":
                raise
            ui.warn(f"Could not reach the VM to remove the container ({exc.message}); "
                    "terminating the instance removes it anyway.")
    if client is not None:  # holds an instance, a ruleset or a rule (else forgotten before)
        remove_legacy_rules(dep, tracker, ui, client)
        if dep.instance_id:
            if provision.terminate_if_present(client, dep.instance_id):
                ui.step(f"Terminated instance {dep.instance_id} (billing stops)")
            else:
                ui.detail(f"instance {dep.instance_id} was already gone")
        tracker.update(instance_id=None, ip=None, host_key=None, launched_at=None,
                       tls_cert=None, tls_fingerprint=None, tls_expires_at=None)
        delete_deployment_ruleset(tracker, ui, client)
    return tracker.update(phase="down")


def remove_container(dep: Deployment) -> bool:
    """The deployment's container and its secrets file, removed; whether a container was."""
    host = connect(dep)
    try:
        docker = Docker(host)
        remove_watchdog(dep.name, host, docker)
        removed = docker.remove(dep.container_name)
        remove_volume(docker, names.secrets_volume(dep.name))
        host.run(["rm", "-f", names.env_file_path(remote_home(host), dep.name)])
        return removed
    finally:
        host.close()
