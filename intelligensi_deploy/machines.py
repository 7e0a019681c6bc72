"""Getting a machine for a deployment: launch (or reuse) a Lambda instance, connect to it or
to an SSH host or this machine, and refuse early when a record holds nothing to reach."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.presets import Preset
from intelligensi_deploy.state import Deployment, NodeRecord

if TYPE_CHECKING:
    from intelligensi_deploy.cloud.lambda_api import LambdaClient
    from intelligensi_deploy.deploy import Reporter, Tracker
    from intelligensi_deploy.remote.host import Host


class NothingRunning(FluxdeployError):
    """The command needs a running deployment and the record holds nothing."""


def connect_existing(dep: Deployment) -> Host:
    """`connect` for commands on a deployment (logs, tunnel, generate): a record that holds
    nothing (never launched, or down) is an error that says so, before any connection."""
    require_running(dep)
    return connect(dep)


def require_running(dep: Deployment) -> None:
    """Raise NothingRunning, saying what to do, when the record holds nothing to reach."""
    if not dep.holds_resources:
        if dep.active:
            raise NothingRunning(
                f"Deployment {dep.name!r} has nothing running: nothing was launched for it "
                f"(phase {dep.phase}).",
                fix=f"Start it with `fluxdeploy up --preset {dep.preset} --name {dep.name}`, "
                f"or forget this record with `fluxdeploy down --name {dep.name}`.",
            )
        raise NothingRunning(
            f"Deployment {dep.name!r} is down.",
            fix=f"Start it again with `fluxdeploy up --preset {dep.preset} --name {dep.name}`.",
        )


def connect(
    dep: Deployment, on_new_host_key: Callable[[str], None] | None = None
) -> Host:
    """A Host for the deployment: this machine, or SSH with the pinned host key."""
    from intelligensi_deploy.remote.host import LocalHost, SSHHost

    if dep.provider == "local":
        return LocalHost()
    if not dep.ip:
        raise FluxdeployError(
            f"Deployment {dep.name!r} has no address yet (phase {dep.phase}).",
            fix="Run `fluxdeploy up` again to resume it, or `fluxdeploy down`.",
        )
    return SSHHost(
        dep.ip,
        port=dep.ssh_port or 22,
        user=dep.ssh_user or "ubuntu",
        key_path=dep.ssh_key_path,
        pinned_host_key=dep.host_key,
        on_new_host_key=on_new_host_key,
    )


def connect_waiting(tracker: Tracker, ui: Reporter, timeout: float) -> Host:
    """Connect to the tracked deployment's machine, waiting for SSH while it boots; the host
    key is pinned on first use and recorded."""
    from intelligensi_deploy.remote.host import wait_for_ssh

    dep = tracker.dep
    if dep.provider == "local":
        return connect(dep)
    ui.step(f"Connecting over SSH to {dep.ssh_user}@{dep.ip}:{dep.ssh_port}")

    def record_key(key: str) -> None:
        tracker.update(host_key=key)
        ui.detail(f"trusted the host key on first use and pinned it: {key.split()[0]}")

    return wait_for_ssh(lambda: connect(tracker.dep, record_key), timeout)


def provision_lambda(
    preset: Preset, tracker: Tracker, ui: Reporter, client: LambdaClient, boot_timeout: float
) -> None:
    """Reuse the recorded instance if it still exists, else launch one; wait until active."""
    from intelligensi_deploy.cloud import provision

    assert preset.lambda_ is not None
    machine = preset.lambda_
    dep = tracker.dep
    if dep.instance_id:
        if instance_gone(client, dep.instance_id):
            ui.warn(f"Recorded instance {dep.instance_id} is gone; launching a new one.")
            # the firewall rule is account-wide and outlives the instance: keep it recorded
            tracker.update(instance_id=None, ip=None, host_key=None, phase="launching")
            if not tracker.dep.firewall_rule:
                tracker.forget()  # nothing left to track until the new launch
        else:
            ui.step(f"Reusing instance {dep.instance_id} in {dep.region}")
    if not tracker.dep.instance_id:
        ensure_ssh_key(client, machine.ssh_key_name, preset.ssh.key_path, ui)
        ui.step(f"Launching {machine.instance_type} (regions in order: "
                f"{', '.join(machine.regions) or 'any with capacity'})")

        def launched(instance_id: str, region: str) -> None:
            tracker.record(instance_id=instance_id, region=region, phase="booting")
            ui.detail(f"launched {instance_id} in {region}; recorded (billing starts now; "
                      "`fluxdeploy down` terminates it)")

        provision.launch_first_available(
            client, machine.instance_type, machine.regions, machine.ssh_key_name,
            name=f"fluxdeploy-{tracker.dep.name}", file_system=machine.file_system,
            on_launched=launched,
        )
    ui.step("Waiting for the instance to be active (boot takes minutes)")
    instance = provision.wait_for_active(
        client, tracker.dep.instance_id, boot_timeout,
        on_status=lambda inst: ui.detail(f"instance {inst.id}: {inst.status}"),
    )
    tracker.update(ip=instance.ip)
    if preset.exposure == "public" and tracker.dep.firewall_rule is None:
        if not provision.firewall_applies(tracker.dep.region or ""):
            ui.warn("us-south-1 has no Lambda firewall rules: the port is open as published.")
        else:
            rule = provision.ensure_firewall_rule(
                client, preset.port, preset.public_cidr, f"fluxdeploy {tracker.dep.name}"
            )
            if rule is not None:
                tracker.update(firewall_rule=rule.to_api())
                ui.detail(f"opened TCP {preset.port} from {preset.public_cidr} (firewall rule)")


def instance_gone(client: LambdaClient, instance_id: str) -> bool:
    """Whether a recorded instance no longer runs (terminated, preempted, or unknown to Lambda)."""
    from intelligensi_deploy.cloud.lambda_errors import LambdaAPIError

    try:
        return client.get_instance(instance_id).status in ("terminated", "terminating",
                                                           "preempted")
    except LambdaAPIError as exc:
        if exc.code != "global/object-does-not-exist":
            raise
        return True


def ensure_ssh_key(client: LambdaClient, key_name: str, key_path: str, ui: Reporter) -> None:
    """The preset's SSH key must exist in the account; add it from `key_path.pub` if not."""
    from intelligensi_deploy.cloud import provision

    public = os.path.expanduser(key_path) + ".pub"
    if os.path.isfile(public):
        with open(public, encoding="utf-8") as fh:
            provision.ensure_ssh_key(client, key_name, fh.read().strip())
        return
    if not any(k.name == key_name for k in client.ssh_keys()):
        raise FluxdeployError(
            f"Lambda has no SSH key named {key_name!r} and {public} does not exist.",
            fix=f"Add the key in the Lambda dashboard under that name, or create {key_path} "
            "with ssh-keygen -t ed25519.",
        )


def connect_node(dep: Deployment, node: NodeRecord,
                 on_new_host_key: Callable[[str], None] | None = None) -> Host:
    """A Host for one node of a cluster (SSH, with that node's pinned host key)."""
    from intelligensi_deploy.remote.host import SSHHost

    if not node.ip:
        raise FluxdeployError(
            f"Node {node.index} of {dep.name!r} has no address yet (phase {dep.phase}).",
            fix="Run `fluxdeploy up` again to resume it, or `fluxdeploy down`.")
    return SSHHost(node.ip, port=dep.ssh_port or 22, user=dep.ssh_user or "ubuntu",
                   key_path=dep.ssh_key_path, pinned_host_key=node.host_key,
                   on_new_host_key=on_new_host_key)
