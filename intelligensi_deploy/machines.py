"""Reaching a recorded deployment: a Host for its machine (this machine, or SSH with the
pinned host key) or for one node of a cluster, and an early, clear refusal when the record
holds nothing to reach."""

from __future__ import annotations

from collections.abc import Callable

from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.remote.host_protocol import Host
from intelligensi_deploy.remote.local_host import LocalHost
from intelligensi_deploy.remote.ssh_host import SSHHost
from intelligensi_deploy.state import Deployment, NodeRecord


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
    if dep.provider == "local":
        return LocalHost()
    return connect_ssh(dep, on_new_host_key)


def connect_ssh(
    dep: Deployment, on_new_host_key: Callable[[str], None] | None = None
) -> SSHHost:
    """The SSH host of a deployment on a VM, with the pinned host key (not yet connected)."""
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


def connect_node(dep: Deployment, node: NodeRecord,
                 on_new_host_key: Callable[[str], None] | None = None) -> SSHHost:
    """A Host for one node of a cluster (SSH, with that node's pinned host key)."""
    if not node.ip:
        raise FluxdeployError(
            f"Node {node.index} of {dep.name!r} has no address yet (phase {dep.phase}).",
            fix="Run `fluxdeploy up` again to resume it, or `fluxdeploy down`.")
    return SSHHost(node.ip, port=dep.ssh_port or 22, user=dep.ssh_user or "ubuntu",
                   key_path=dep.ssh_key_path, pinned_host_key=node.host_key,
                   on_new_host_key=on_new_host_key)
