"""Getting a Lambda machine for a deployment: reuse the recorded instance or launch one (the
record is saved the moment Lambda gives an id, so a kill during `up` never loses an instance),
wait until it is active, open the public port when the preset asks, then connect over SSH."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from intelligensi_deploy import names
from intelligensi_deploy.cloud import provision
from intelligensi_deploy.cloud.lambda_api import LambdaClient
from intelligensi_deploy.cloud.lambda_errors import LambdaAPIError
from intelligensi_deploy.cloud.lambda_types import InstanceType
from intelligensi_deploy.cost import price_line
from intelligensi_deploy.deploy.reporter import Reporter
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.machines import connect, connect_ssh
from intelligensi_deploy.preset_limits import LimitsSection
from intelligensi_deploy.presets import Preset
from intelligensi_deploy.remote.host_protocol import Host
from intelligensi_deploy.remote.ssh_host import wait_for_ssh
from intelligensi_deploy.state import Tracker

Approve = Callable[[str], bool]  # asked before anything bills: the price line -> go ahead?


class LaunchDeclined(FluxdeployError):
    """The user said no at the price line: nothing was launched."""


def approve_launch(types: Sequence[InstanceType], instance_type: str, regions: Sequence[str],
                   nodes: int, ui: Reporter, approve: Approve | None,
                   limits: LimitsSection) -> int:
    """Show what the launch will cost and the limits that end it (before anything bills), and
    ask `approve`, when given (a terminal without --yes); returns the price per instance in
    cents per hour."""
    cents = provision.find_type(types, instance_type).price_cents_per_hour
    ui.step(f"Launching {price_line(instance_type, cents, nodes)}, billed until terminated: "
            f"{limits.describe()}")
    if not provision.choose_regions(types, instance_type, regions):
        return cents  # no capacity anywhere it may go: the launch says so, nothing to ask
    if approve is not None and not approve("Launch and start billing?"):
        raise LaunchDeclined("Nothing was launched (declined at the price).",
                             fix="Run `fluxdeploy up` again and answer yes, or pass --yes.")
    return cents


def provision_lambda(
    preset: Preset, tracker: Tracker, ui: Reporter, client: LambdaClient, boot_timeout: float,
    approve: Approve | None = None, limits: LimitsSection | None = None,
) -> None:
    """Reuse the recorded instance if it still exists, else launch one (after the price line
    and, on a terminal, `approve`); wait until active."""
    assert preset.lambda_ is not None
    machine = preset.lambda_
    dep = tracker.dep
    if dep.instance_id:
        if instance_gone(client, dep.instance_id):
            ui.warn(f"Recorded instance {dep.instance_id} is gone; launching a new one.")
            # the firewall rule is account-wide and outlives the instance: keep it recorded
            tracker.update(instance_id=None, ip=None, host_key=None, launched_at=None,
                           phase="launching")
            if not tracker.dep.firewall_rule:
                tracker.forget()  # nothing left to track until the new launch
        else:
            ui.step(f"Reusing instance {dep.instance_id} in {dep.region}")
    if not tracker.dep.instance_id:
        types = client.instance_types()
        cents = approve_launch(types, machine.instance_type, machine.regions, 1, ui, approve,
                               limits or LimitsSection())
        ensure_account_key(client, machine.ssh_key_name, preset.ssh.key_path, ui)
        ui.detail(f"regions in order: {', '.join(machine.regions) or 'any with capacity'}")

        def launched(instance_id: str, region: str) -> None:
            tracker.record(instance_id=instance_id, region=region, phase="booting",
                           launched_at=time.time(), price_cents_per_hour=cents)
            ui.detail(f"launched {instance_id} in {region}; recorded (billing starts now; "
                      "`fluxdeploy down` terminates it)")

        provision.launch_first_available(
            client, machine.instance_type, machine.regions, machine.ssh_key_name,
            name=names.instance_name(tracker.dep.name), file_system=machine.file_system,
            tags=names.instance_tags(tracker.dep.name), instance_types=types,
            on_launched=launched,
        )
    instance_id = tracker.dep.instance_id
    assert instance_id is not None
    ui.step("Waiting for the instance to be active (boot takes minutes)")
    instance = provision.wait_for_active(
        client, instance_id, boot_timeout,
        on_status=lambda inst: ui.detail(f"instance {inst.id}: {inst.status}"),
    )
    tracker.update(ip=instance.ip)
    if preset.exposure == "public" and tracker.dep.firewall_rule is None:
        if not provision.firewall_applies(tracker.dep.region or ""):
            ui.warn("us-south-1 has no Lambda firewall rules: the port is open as published.")
        else:
            open_public_port(preset, tracker, ui, client)


def open_public_port(preset: Preset, tracker: Tracker, ui: Reporter,
                     client: LambdaClient) -> None:
    """The firewall rule for the serving port (public presets), recorded for `down`."""
    rule = provision.ensure_firewall_rule(client, preset.port, preset.public_cidr,
                                          names.rule_description(tracker.dep.name))
    if rule is not None:
        tracker.update(firewall_rule=rule.to_api())
        ui.detail(f"opened TCP {preset.port} from {preset.public_cidr} (firewall rule)")


def instance_gone(client: LambdaClient, instance_id: str) -> bool:
    """Whether a recorded instance no longer runs (terminated, preempted, or unknown to Lambda)."""
    try:
        return client.get_instance(instance_id).status in ("terminated", "terminating",
                                                           "preempted")
    except LambdaAPIError as exc:
        if exc.code != "global/object-does-not-exist":
            raise
        return True


def ensure_account_key(client: LambdaClient, key_name: str, key_path: str,
                       ui: Reporter) -> None:
    """The preset's SSH key must exist in the account; add it from `key_path.pub` if not."""
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


def connect_waiting(tracker: Tracker, ui: Reporter, timeout: float) -> Host:
    """Connect to the tracked deployment's machine, waiting for SSH while it boots; the host
    key is pinned on first use and recorded."""
    dep = tracker.dep
    if dep.provider == "local":
        return connect(dep)
    ui.step(f"Connecting over SSH to {dep.ssh_user}@{dep.ip}:{dep.ssh_port}")

    def record_key(key: str) -> None:
        tracker.update(host_key=key)
        ui.detail(f"trusted the host key on first use and pinned it: {key.split()[0]}")

    return wait_for_ssh(lambda: connect_ssh(tracker.dep, record_key), timeout)
