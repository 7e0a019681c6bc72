"""Getting a Lambda machine for a deployment: reuse the recorded instance or launch one with
the deployment's own firewall ruleset attached (deploy/firewall.py; the record is saved the
moment Lambda gives an id, so a kill during `up` never loses an instance), wait until it is
active, bring its rules to the preset, then connect over SSH."""

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
from intelligensi_deploy.deploy.firewall import drop_unused_ruleset, open_ports, ruleset_hook
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
    wait_capacity_s: float | None = None,
) -> None:
    """Reuse the recorded instance if it still exists, else launch one (after the price line
    and, on a terminal, `approve`) with the deployment's firewall ruleset; wait until
    active. A launch that launched nothing deletes the ruleset it made. `wait_capacity_s`
    (`up --wait`): when no region it may use has capacity, ask again that often until one
    has (Ctrl-C stops), instead of failing."""
    assert preset.lambda_ is not None
    machine = preset.lambda_
    dep = tracker.dep
    if dep.instance_id:
        if instance_gone(client, dep.instance_id):
            ui.warn(f"Recorded instance {dep.instance_id} is gone; launching a new one.")
            # the ruleset (and a legacy rule) outlive the instance: keep them recorded
            tracker.update(instance_id=None, ip=None, host_key=None, launched_at=None,
                           phase="launching")
            if not tracker.dep.holds_resources:
                tracker.forget()  # nothing left to track until the new launch
        else:
            ui.step(f"Reusing instance {dep.instance_id} in {dep.region}")
    if not tracker.dep.instance_id:
        types = client.instance_types()
        cents = approve_launch(types, machine.instance_type, machine.regions, 1, ui, approve,
                               limits or LimitsSection())
        ensure_account_key(client, machine.ssh_key_name, preset.ssh.key_path, ui)
        ui.detail(f"regions in order: {', '.join(machine.regions) or 'any with capacity'}")
        file_system = machine.file_system_for(tracker.dep.name)
        if file_system:
            ui.detail(f"file system {file_system} holds the HF cache (made in the launch "
                      "region if new; an existing one pins the region)")

        def launched(instance_id: str, region: str) -> None:
            tracker.record(instance_id=instance_id, region=region, phase="booting",
                           launched_at=time.time(), price_cents_per_hour=cents,
                           file_system=machine.file_system_for(tracker.dep.name))
            ui.detail(f"launched {instance_id} in {region}; recorded (billing starts now; "
                      "`fluxdeploy down` terminates it)")

        while True:
            try:
                provision.launch_first_available(
                    client, machine.instance_type, machine.regions, machine.ssh_key_name,
                    name=names.instance_name(tracker.dep.name),
                    file_system=machine.file_system_for(tracker.dep.name),
                    tags=names.instance_tags(tracker.dep.name), on_launched=launched,
                    firewall_rulesets=ruleset_hook(preset, tracker, ui, client))
                break
            except provision.NoCapacity as exc:
                if wait_capacity_s is None:
                    drop_unused_ruleset(tracker, client, ui)
                    raise
                ui.detail(f"{exc.message.split('. Capacity now')[0]}: asking again in "
                          f"{wait_capacity_s:.0f} s (--wait; Ctrl-C stops)")
                client.pause(wait_capacity_s)
            except FluxdeployError:
                drop_unused_ruleset(tracker, client, ui)
                raise
    instance_id = tracker.dep.instance_id
    assert instance_id is not None
    ui.step("Waiting for the instance to be active (boot takes minutes)")
    instance = provision.wait_for_active(
        client, instance_id, boot_timeout,
        on_status=lambda inst: ui.detail(f"instance {inst.id}: {inst.status}"),
    )
    tracker.update(ip=instance.ip)
    open_public_port(preset, tracker, ui, client)


def open_public_port(preset: Preset, tracker: Tracker, ui: Reporter,
                     client: LambdaClient) -> None:
    """The serving port's rule (public presets) and SSH's, in the deployment's ruleset (a
    PATCH when the preset changed); the legacy account-wide rule only for an instance an
    earlier fluxdeploy launched without a ruleset."""
    open_ports(preset, tracker, ui, client)


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
