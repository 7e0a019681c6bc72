"""`up` and `down` for a multi-node cluster (a preset with `scale.nodes` > 1), over SSH.

`up` = launch every node in one region, or none (cloud/cluster_plan.py) -> wait until each is
active -> open Ray's ports to the nodes' own addresses (one /32 rule each) -> on each node,
head first: image (pull, or build the bundled one), a 0600 env file with the secrets (the
Hugging Face token and the cluster's Ray token), the node's container -> wait on the head's
`/ready` until enough replicas are ready, showing each replica's phase. Every node is recorded
the moment Lambda gives its id, so a kill during `up` resumes without a second launch.
`down` is cluster_down.py.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from intelligensi_deploy import secrets
from intelligensi_deploy.cluster_images import NodeReporter, image_on_node
from intelligensi_deploy.cluster_nodes import (
    RAY_TOKEN_NAME,
    ClusterNode,
    new_ray_token,
    node_container_name,
    node_env_file,
    node_run_args,
)
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.state import Deployment, NodeRecord

if TYPE_CHECKING:
    from intelligensi_deploy.cloud.lambda_api import LambdaClient
    from intelligensi_deploy.deploy import Reporter, Tracker
    from intelligensi_deploy.presets import Preset
    from intelligensi_deploy.remote.host import Host

CONFIG_LABEL = "fluxdeploy.config"


# ---------------------------------------------------------------- the record


def set_node(tracker: Tracker, node: NodeRecord) -> Deployment:
    """Save `node` into the record (replacing the node of its index); node 1 is mirrored in
    the top-level fields, which every single-endpoint command reads."""
    nodes = sorted([*(n for n in tracker.dep.nodes if n.index != node.index), node],
                   key=lambda n: n.index)
    fields: dict = {"nodes": nodes}
    if node.index == 1:
        fields.update(instance_id=node.instance_id, ip=node.ip, host_key=node.host_key,
                      region=node.region, container_name=node.container_name)
    return tracker.update(**fields) if tracker.recorded else tracker.record(**fields)


def drop_node(tracker: Tracker, index: int) -> Deployment:
    nodes = [n for n in tracker.dep.nodes if n.index != index]
    fields: dict = {"nodes": nodes}
    if index == 1:
        fields.update(instance_id=None, ip=None, host_key=None)
    return tracker.update(**fields)


def env_file_path(home: str, deployment: str, index: int) -> str:
    """Each node's secrets file (per node, so that nodes sharing a home never collide)."""
    return f"{home}/.fluxdeploy/{deployment}-node{index}.env"


def config_hash(args: list[str]) -> str:
    """A digest of the container's whole configuration (its `docker run` args)."""
    return hashlib.sha256(json.dumps(args).encode()).hexdigest()[:16]


def with_config_label(args: list[str], image: str) -> list[str]:
    """`args` with the config label added just before the image."""
    at = args.index(image)
    return [*args[:at], "--label", f"{CONFIG_LABEL}={config_hash(args)}", *args[at:]]


# ---------------------------------------------------------------- launch


def launch_nodes(preset: Preset, tracker: Tracker, ui: Reporter, client: LambdaClient,
                 boot_timeout: float) -> list[NodeRecord]:
    """Every node launched (or reused) and active with an address; recorded as it goes."""
    from intelligensi_deploy.cloud import provision
    from intelligensi_deploy.cloud.cluster_plan import (
        RecordedNode,
        launch_cluster,
        plan_cluster_launch,
    )
    from intelligensi_deploy.machines import ensure_ssh_key, instance_gone

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
    plan = plan_cluster_launch(client.instance_types(), machine.instance_type, machine.regions,
                               name, count, recorded)
    if plan.to_launch:
        ensure_ssh_key(client, machine.ssh_key_name, preset.ssh.key_path, ui)
        ui.step(f"Launching {len(plan.to_launch)} x {machine.instance_type} in {plan.region} "
                f"(a cluster of {count}: node 1 is the Ray head and the endpoint)")
    else:
        ui.step(f"Reusing the {count} nodes in {plan.region}")
    index_of = {n: i for i, n in enumerate(plan.node_names, start=1)}

    def launched(node: RecordedNode) -> None:
        set_node(tracker, NodeRecord(index=index_of[node.name], name=node.name,
                                     instance_id=node.instance_id, region=node.region))
        tracker.update(phase="booting", region=tracker.dep.region or node.region)
        ui.detail(f"launched {node.name} ({node.instance_id}) in {node.region}; recorded "
                  "(billing starts now; `fluxdeploy down` terminates it)")

    def terminated(node: RecordedNode) -> None:
        drop_node(tracker, index_of[node.name])
        ui.detail(f"terminated {node.name} ({node.instance_id})")

    launch_cluster(client, plan, machine.ssh_key_name, recorded=recorded,
                   on_launched=launched, on_terminated=terminated)
    ui.step("Waiting for every node to be active (boot takes minutes)")
    for node in list(tracker.dep.nodes):
        assert node.instance_id is not None
        instance = provision.wait_for_active(
            client, node.instance_id, boot_timeout,
            on_status=lambda inst, i=node.index: ui.detail(f"node {i} ({inst.id}): {inst.status}"))
        if instance.ip != node.ip:
            set_node(tracker, node.model_copy(update={"ip": instance.ip, "host_key": None}))
    return list(tracker.dep.nodes)


def open_cluster_ports(preset: Preset, tracker: Tracker, ui: Reporter,
                       client: LambdaClient) -> None:
    """One /32 rule per node for Ray's port range (never wider), and the serving port's rule
    when the preset is public. The addresses are recorded before the rules are written."""
    from intelligensi_deploy.cloud import provision
    from intelligensi_deploy.cloud.ray_ports import RAY_PORTS, merge_ray_rules

    ips = [n.ip for n in tracker.dep.nodes if n.ip]
    tracker.update(ray_rule_ips=sorted(set(ips) | set(tracker.dep.ray_rule_ips)))
    rules = client.firewall_rules()
    wanted = merge_ray_rules(rules, tracker.dep.name, ips)
    if [r.to_api() for r in wanted] != [r.to_api() for r in rules]:
        client.set_firewall_rules(wanted)
    low, high = RAY_PORTS.range
    ui.step(f"Ray's ports {low}-{high} open to the {len(ips)} nodes only (one /32 rule each)")
    tracker.update(ray_rule_ips=ips)
    if preset.exposure == "public" and tracker.dep.firewall_rule is None:
        rule = provision.ensure_firewall_rule(client, preset.port, preset.public_cidr,
                                              f"fluxdeploy {tracker.dep.name}")
        if rule is not None:
            tracker.update(firewall_rule=rule.to_api())
            ui.detail(f"opened TCP {preset.port} from {preset.public_cidr} (firewall rule)")


# ---------------------------------------------------------------- the containers


def connect_nodes(tracker: Tracker, ui: Reporter, timeout: float) -> dict[int, Host]:
    """An SSH connection to every node (waiting while it boots); host keys pinned on first
    use and recorded per node."""
    from intelligensi_deploy.machines import connect_node
    from intelligensi_deploy.remote.host import wait_for_ssh

    hosts: dict[int, Host] = {}
    try:
        for node in tracker.dep.nodes:
            ui.step(f"Connecting over SSH to node {node.index} "
                    f"({tracker.dep.ssh_user}@{node.ip}:{tracker.dep.ssh_port})")

            def record_key(key: str, index: int = node.index) -> None:
                set_node(tracker, tracker.dep.node(index).model_copy(update={"host_key": key}))
                ui.detail(f"node {index}: trusted the host key on first use and pinned it")

            hosts[node.index] = wait_for_ssh(
                lambda i=node.index, k=record_key: connect_node(tracker.dep, tracker.dep.node(i),
                                                                k), timeout)
    except BaseException:
        close_all(hosts)
        raise
    return hosts


def close_all(hosts: Mapping[int, Host]) -> None:
    for host in hosts.values():
        host.close()


def read_ray_token(host: Host, path: str) -> str | None:
    """The cluster's Ray token from the head's env file (it lives on the nodes only)."""
    result = host.run(["cat", path], timeout=30)
    if not result.ok:
        return None
    for line in result.stdout.splitlines():
        key, _, value = line.partition("=")
        if key == RAY_TOKEN_NAME and value.strip():
            return value.strip()
    return None


def deploy_nodes(preset: Preset, tracker: Tracker, hosts: Mapping[int, Host], ui: Reporter, *,
                 force: bool, environ: Mapping[str, str],
                 build_flags: Mapping[str, str] | None) -> None:
    """Each node's image, env file and container, head first."""
    from intelligensi_deploy.deploy import remote_home
    from intelligensi_deploy.remote.docker import Docker

    image, plan = preset.image, None
    if preset.bundled:
        from intelligensi_deploy.bundle import build
        from intelligensi_deploy.bundle.settings import resolve

        plan = build.plan_build(resolve(preset.build, build_flags or {}, environ), environ)
        image = plan.tag
    homes = {i: remote_home(h) for i, h in hosts.items()}
    dockers = {i: Docker(h) for i, h in hosts.items()}  # one each: the sudo check runs once
    token = read_ray_token(hosts[1], env_file_path(homes[1], tracker.dep.name, 1))
    if token is None:
        token = new_ray_token()
    body = node_env_file(secrets.hf_token(environ), token)
    assert preset.scale is not None and tracker.dep.nodes
    gpus = preset.lambda_.gpu_count() if preset.lambda_ else None
    per_node = preset.scale.per_node(gpus or 1)
    head_ip = tracker.dep.node(1).ip or ""
    runs: list[NodeRun] = []
    for node in tracker.dep.nodes:  # node 1 first
        where = ClusterNode(node.index, node.name, node.ip or "")
        env_file = env_file_path(homes[node.index], tracker.dep.name, node.index)
        args = with_config_label(
            node_run_args(preset, tracker.dep.name, where, head_ip, env_file, per_node,
                          image=image), image)
        found = dockers[node.index].inspect(node_container_name(tracker.dep.name, where))
        runs.append(NodeRun(node, node_container_name(tracker.dep.name, where), env_file, args,
                            found))
    changed = [r for r in runs if r.running and not r.same_config(force)]
    if changed and not force:
        refuse_while_loading(preset, hosts[1], changed)
    # Images on every node at once (a 30 GB pull or a build takes as long on each node).
    to_prepare = [r.node.index for r in runs if not r.keep(force)]
    with ThreadPoolExecutor(max_workers=max(1, len(to_prepare))) as pool:
        for done in [pool.submit(image_on_node, preset, plan, tracker, dockers[i],
                                 NodeReporter(ui, i), environ) for i in to_prepare]:
            done.result()
    for run in runs:
        index, container = run.node.index, run.container
        host, docker = hosts[index], dockers[index]
        if run.keep(force):
            ui.step(f"Node {index}: container {container} runs this configuration")
            set_node(tracker, run.node.model_copy(update={"container_name": container}))
            continue
        ui.step(f"Node {index}: secrets to a 0600 env file (never on a command line)")
        host.run(["mkdir", "-p", "-m", "700", f"{homes[index]}/.fluxdeploy"])
        host.write_file(run.env_file, body, 0o600)
        if run.found:
            ui.step(f"Node {index}: replacing container {container}")
            docker.remove(container)
        ui.step(f"Node {index} ({run.node.role}): starting {container} ({image})")
        result = docker.run_docker(run.args, timeout=300)
        if not result.ok:
            raise FluxdeployError(
                f"`docker run` of node {index} ({run.node.ip}) failed: "
                f"{result.output.strip()[-400:]}",
                fix="Read the message above; `fluxdeploy doctor` checks the usual causes.",
                doc="docker-run")
        set_node(tracker, run.node.model_copy(update={"container_name": container}))
    tracker.update(phase="loading", image=image)


@dataclass(frozen=True)
class NodeRun:
    """One node's container as `up` wants it, and what `docker inspect` found there."""

    node: NodeRecord
    container: str
    env_file: str
    args: list[str]
    found: dict | None

    @property
    def running(self) -> bool:
        return self.found is not None and bool((self.found.get("State") or {}).get("Running"))

    def same_config(self, force: bool) -> bool:
        return (not force and self.found is not None
                and _label(self.found) == config_hash(_without_label(self.args)))

    def keep(self, force: bool) -> bool:
        """Running with this very configuration (and no --force): nothing to do."""
        return self.running and self.same_config(force)


def refuse_while_loading(preset: Preset, head: Host, changed: list[NodeRun]) -> None:
    """The playbook's rule for a cluster: never restart containers while the replicas are
    still loading the model, unless --force (the load would start over)."""
    from intelligensi_deploy.deploy import probe_ready

    ready = probe_ready(head, preset.port)
    if ready.loading:
        nodes = ", ".join(str(r.node.index) for r in changed)
        raise FluxdeployError(
            f"The cluster is still loading ({ready.describe()}) and the preset changed for "
            f"node(s) {nodes}.",
            fix="Wait for it to be ready (`fluxdeploy status`), or replace the containers now "
                "with `fluxdeploy up --force` (the load starts over).",
            doc="still-loading")


def _label(found: Mapping) -> str | None:
    return ((found.get("Config") or {}).get("Labels") or {}).get(CONFIG_LABEL)


def _without_label(args: list[str]) -> list[str]:
    at = args.index("--label")
    while not args[at + 1].startswith(f"{CONFIG_LABEL}="):
        at = args.index("--label", at + 1)
    return [*args[:at], *args[at + 2:]]


# ---------------------------------------------------------------- up and down


def up_cluster(preset: Preset, tracker: Tracker, ui: Reporter, client: LambdaClient, *,
               force: bool, environ: Mapping[str, str] = os.environ,
               build_flags: Mapping[str, str] | None = None, boot_timeout: float = 1800.0,
               ssh_timeout: float = 300.0) -> Deployment:
    """Bring the whole cluster up (or resume it) and wait until enough replicas are ready."""
    from intelligensi_deploy.deploy import wait_until_ready
    from intelligensi_deploy.remote.docker import Docker

    launch_nodes(preset, tracker, ui, client, boot_timeout)
    open_cluster_ports(preset, tracker, ui, client)
    hosts = connect_nodes(tracker, ui, ssh_timeout)
    try:
        tracker.update(phase="deploying")
        deploy_nodes(preset, tracker, hosts, ui, force=force, environ=environ,
                     build_flags=build_flags)
        wait_until_ready(preset, tracker, hosts[1], Docker(hosts[1]), ui)
        return tracker.dep
    finally:
        close_all(hosts)
