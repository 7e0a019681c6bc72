"""A cluster's machines (a preset with `scale.nodes` > 1): every node launched in one region,
or none (cloud/cluster_plan.py), each recorded the moment Lambda gives its id, active with an
address, each carrying the deployment's firewall ruleset (deploy/firewall.py) whose Ray rules
open to the nodes' own addresses only; an SSH connection to each."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from intelligensi_deploy.cloud import provision
from intelligensi_deploy.cloud.cluster_plan import (
    RecordedNode,
    launch_cluster,
    plan_cluster_launch,
)
from intelligensi_deploy.cloud.lambda_api import LambdaClient
from intelligensi_deploy.cloud.lambda_types import Instance
from intelligensi_deploy.cloud.ray_ports import RAY_PORTS
from intelligensi_deploy.deploy.firewall import drop_unused_ruleset, open_ports, ruleset_hook
from intelligensi_deploy.deploy.launch import (
    Approve,
    approve_launch,
    ensure_account_key,
    instance_gone,
)
from intelligensi_deploy.deploy.reporter import Reporter
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.machines import connect_node
from intelligensi_deploy.preset_limits import LimitsSection
from intelligensi_deploy.presets import Preset
from intelligensi_deploy.remote.host_protocol import Host
from intelligensi_deploy.remote.ssh_host import SSHHost, wait_for_ssh
from intelligensi_deploy.state import NodeRecord, Tracker, drop_node, set_node


def launch_nodes(preset: Preset, tracker: Tracker, ui: Reporter, client: LambdaClient,
                 boot_timeout: float, approve: Approve | None = None,
                 limits: LimitsSection | None = None) -> list[NodeRecord]:
    """Every node launched (or reused) and active with an address; recorded as it goes.
    Before a launch: the price line (per node and for the cluster) and `approve`."""
    assert preset.lambda_ is not None and preset.scale is not None
    machine, count = preset.lambda_, preset.scale.nodes
    name = tracker.dep.name
    recorded: list[RecordedNode] = []
    for node in list(tracker.dep.nodes):
        if not node.instance_id:
            continue
        if instance_gone(client, node.instance_id):
            ui.warn(f"Node {node.index}'s instance {node.instance_id} is gone; launching it again.")
            drop_node(tracker, node.index)
        else:
            recorded.append(RecordedNode(node.name, node.instance_id, node.region or ""))
    types = client.instance_types()
    plan = plan_cluster_launch(types, machine.instance_type, machine.regions, name, count,
                               recorded)
    if plan.to_launch:
        approve_launch(types, machine.instance_type, [plan.region], len(plan.to_launch), ui,
                       approve, limits or LimitsSection())
        tracker.update(price_cents_per_hour=plan.price_cents_per_hour)
        ensure_account_key(client, machine.ssh_key_name, preset.ssh.key_path, ui)
        ui.step(f"Launching {len(plan.to_launch)} x {machine.instance_type} in {plan.region} "
                f"(a cluster of {count}: node 1 is the Ray head and the endpoint)")
    else:
        ui.step(f"Reusing the {count} nodes in {plan.region}")
    index_of = {n: i for i, n in enumerate(plan.node_names, start=1)}

    def launched(node: RecordedNode) -> None:
        set_node(tracker, NodeRecord(index=index_of[node.name], name=node.name,
                                     instance_id=node.instance_id, region=node.region,
                                     launched_at=time.time()))
        tracker.update(phase="booting", region=tracker.dep.region or node.region)
        ui.detail(f"launched {node.name} ({node.instance_id}) in {node.region}; recorded "
                  "(billing starts now; `fluxdeploy down` terminates it)")

    def terminated(node: RecordedNode) -> None:
        drop_node(tracker, index_of[node.name])
        ui.detail(f"terminated {node.name} ({node.instance_id})")

    known_ips = [n.ip for n in tracker.dep.nodes if n.ip]
    try:
        launch_cluster(client, plan, machine.ssh_key_name, recorded=recorded,
                       on_launched=launched, on_terminated=terminated,
                       firewall_rulesets=ruleset_hook(preset, tracker, ui, client, known_ips))
    except FluxdeployError:
        drop_unused_ruleset(tracker, client, ui)
        raise
    ui.step("Waiting for every node to be active (boot takes minutes)")
    for node in list(tracker.dep.nodes):
        assert node.instance_id is not None

        def on_status(inst: Instance, i: int = node.index) -> None:
            ui.detail(f"node {i} ({inst.id}): {inst.status}")

        instance = provision.wait_for_active(client, node.instance_id, boot_timeout,
                                             on_status=on_status)
        if instance.ip != node.ip:
            set_node(tracker, node.model_copy(update={"ip": instance.ip, "host_key": None}))
    return list(tracker.dep.nodes)


def open_cluster_ports(preset: Preset, tracker: Tracker, ui: Reporter,
                       client: LambdaClient) -> None:
    """The deployment's ruleset PATCHed once every node has its address: one /32 rule per
    node for Ray's port range (never wider), SSH, and the serving port when the preset is
    public. (A cluster an earlier fluxdeploy launched keeps its account-wide rules.)"""
    ips = [n.ip for n in tracker.dep.nodes if n.ip]
    open_ports(preset, tracker, ui, client, ips)
    low, high = RAY_PORTS.range
    ui.step(f"Ray's ports {low}-{high} open to the {len(ips)} nodes only (one /32 rule each)")


def connect_nodes(tracker: Tracker, ui: Reporter, timeout: float) -> dict[int, Host]:
    """An SSH connection to every node (waiting while it boots); host keys pinned on first
    use and recorded per node."""
    hosts: dict[int, Host] = {}
    try:
        for node in tracker.dep.nodes:
            ui.step(f"Connecting over SSH to node {node.index} "
                    f"({tracker.dep.ssh_user}@{node.ip}:{tracker.dep.ssh_port})")

            def record_key(key: str, index: int = node.index) -> None:
                set_node(tracker, tracker.dep.node(index).model_copy(update={"host_key": key}))
                ui.detail(f"node {index}: trusted the host key on first use and pinned it")

            def make_host(i: int = node.index,
                          k: Callable[[str], None] = record_key) -> SSHHost:
                return connect_node(tracker.dep, tracker.dep.node(i), k)

            hosts[node.index] = wait_for_ssh(make_host, timeout)
    except BaseException:
        close_all(hosts)
        raise
    return hosts


def close_all(hosts: Mapping[int, Host]) -> None:
    for host in hosts.values():
        host.close()
