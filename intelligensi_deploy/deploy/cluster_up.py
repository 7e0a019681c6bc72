"""`up` for a multi-node cluster (a preset with `scale.nodes` > 1), over SSH.

`up` = launch every node in one region, or none, and open Ray's ports to the nodes only
(cluster_launch.py) -> on each node, head first: image (pull, or build the bundled one), a
0600 env file with the secrets (the Hugging Face token and the cluster's Ray token), the
node's container -> wait on the head's `/ready` until enough replicas are ready, showing each
replica's phase. `down` is cluster_down.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from intelligensi_deploy import names, secrets
from intelligensi_deploy.cloud.lambda_api import LambdaClient
from intelligensi_deploy.cloud.ray_ports import ray_rule_description
from intelligensi_deploy.cluster_nodes import (
    RAY_TOKEN_NAME,
    ClusterNode,
    new_ray_token,
    node_env_file,
    node_run_args,
)
from intelligensi_deploy.deploy.certificate import pin, running_tls, server_certificate
from intelligensi_deploy.deploy.cluster_launch import (
    close_all,
    connect_nodes,
    launch_nodes,
    open_cluster_ports,
)
from intelligensi_deploy.deploy.launch import Approve
from intelligensi_deploy.deploy.reporter import NodeReporter, Reporter
from intelligensi_deploy.deploy.steps import (
    bundled_plan,
    image_on_host,
    remote_home,
    server_api_key,
    wait_until_ready,
)
from intelligensi_deploy.deploy.watchdog import ensure_watchdog
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.health import probe_ready
from intelligensi_deploy.preset_limits import LimitsSection
from intelligensi_deploy.presets import Preset
from intelligensi_deploy.remote.docker import Docker
from intelligensi_deploy.remote.host_protocol import Host
from intelligensi_deploy.state import Deployment, NodeRecord, Tracker, set_node
from intelligensi_deploy.tls_pin import ServerTls
from intelligensi_deploy.watchdog_plan import DEFAULT_INTERVAL_S, WatchPlan


def up_cluster(preset: Preset, tracker: Tracker, ui: Reporter, client: LambdaClient, *,
               force: bool, environ: Mapping[str, str] = os.environ,
               build_flags: Mapping[str, str] | None = None, boot_timeout: float = 1800.0,
               ssh_timeout: float = 300.0, approve: Approve | None = None,
               limits: LimitsSection | None = None) -> Deployment:
    """Bring the whole cluster up (or resume it) and wait until enough replicas are ready.
    The head's watchdog enforces `limits` for every node."""
    limits = limits or LimitsSection()
    launch_nodes(preset, tracker, ui, client, boot_timeout, approve, limits)
    open_cluster_ports(preset, tracker, ui, client)
    hosts = connect_nodes(tracker, ui, ssh_timeout)
    try:
        tracker.update(phase="deploying")
        deploy_nodes(preset, tracker, hosts, ui, force=force, environ=environ,
                     build_flags=build_flags)
        head = Docker(hosts[1])
        ensure_watchdog(cluster_watch_plan(tracker.dep, limits, environ), hosts[1], head, ui,
                        environ)
        wait_until_ready(preset, tracker, hosts[1], head, ui)
        return tracker.dep
    finally:
        close_all(hosts)


def cluster_watch_plan(dep: Deployment, limits: LimitsSection, environ: Mapping[str, str]
                       ) -> WatchPlan:
    """What the head's watchdog ends: every node, then the deployment's firewall ruleset
    (and, before terminating, the legacy rules an earlier fluxdeploy recorded: nothing is
    left behind)."""
    rules = [ray_rule_description(dep.name, ip) for ip in dep.ray_rule_ips]
    if dep.firewall_rule:
        rules.append(names.rule_description(dep.name))
    started = [n.launched_at for n in dep.nodes if n.launched_at]
    return WatchPlan(
        deployment=dep.name, image=dep.image, port=dep.port, limits=limits,
        launched_at=min(started) if started else time.time(),
        instances=tuple(n.instance_id for n in dep.nodes if n.instance_id), rules=tuple(rules),
        api_url=environ.get("LAMBDA_API_URL") or None,
        interval_s=float(environ.get("FLUXDEPLOY_WATCH_INTERVAL_S") or DEFAULT_INTERVAL_S),
        ruleset=dep.firewall_ruleset_id, https=dep.tls is not None)


# ---------------------------------------------------------------- the containers


def config_hash(args: list[str]) -> str:
    """A digest of a node container's whole configuration (its `docker run` args; see
    names.CONFIG_LABEL for the single-node digest)."""
    return hashlib.sha256(json.dumps(args).encode()).hexdigest()[:16]


def with_config_label(args: list[str], image: str) -> list[str]:
    """`args` with the config label added just before the image."""
    at = args.index(image)
    return [*args[:at], "--label", f"{names.CONFIG_LABEL}={config_hash(args)}", *args[at:]]


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
    plan = bundled_plan(preset, build_flags, environ)
    image = plan.tag if plan else preset.image
    name = tracker.dep.name
    homes = {i: remote_home(h) for i, h in hosts.items()}
    dockers = {i: Docker(h) for i, h in hosts.items()}  # one each: the sudo check runs once
    token = read_ray_token(hosts[1], names.env_file_path(homes[1], name, 1))
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
        env_file = names.env_file_path(homes[node.index], name, node.index)
        args = with_config_label(
            node_run_args(preset, name, where, head_ip, env_file, per_node, image=image), image)
        container = names.node_name(name, node.index)
        runs.append(NodeRun(node, container, env_file, args,
                            dockers[node.index].inspect(container)))
    head = runs[0]
    serving = running_tls(dockers[1], head.container, head.found) if head.running else None
    changed = [r for r in runs if r.running and not r.same_config(force)]
    if changed and not force:
        refuse_while_loading(preset, hosts[1], changed, serving)
    # Images on every node at once (a 30 GB pull or a build takes as long on each node).
    to_prepare = [r.node.index for r in runs if not r.keep(force)]
    with ThreadPoolExecutor(max_workers=max(1, len(to_prepare))) as pool:
        for done in [pool.submit(image_on_host, preset, plan, tracker, dockers[i],
                                 NodeReporter(ui, i), environ) for i in to_prepare]:
            done.result()
    server_api_key(preset.auth_on, tracker, dockers[1], ui, image)  # before the head starts
    if head.keep(force):
        pin(tracker, serving.cert_pem if serving else None)
    else:
        server_certificate(preset.tls_on, tracker, dockers[1], ui, image)
    for run in runs:
        start_node(run, hosts[run.node.index], dockers[run.node.index], homes[run.node.index],
                   body, image, tracker, ui, force=force)
    tracker.update(phase="loading", image=image)


def start_node(run: NodeRun, host: Host, docker: Docker, home: str, env_body: bytes,
               image: str, tracker: Tracker, ui: Reporter, *, force: bool) -> None:
    """One node's env file and container (kept when it runs this very configuration)."""
    index, container = run.node.index, run.container
    if run.keep(force):
        ui.step(f"Node {index}: container {container} runs this configuration")
        set_node(tracker, run.node.model_copy(update={"container_name": container}))
        return
    ui.step(f"Node {index}: secrets to a 0600 env file (never on a command line)")
    host.run(["mkdir", "-p", "-m", "700", f"{home}/{names.SECRETS_DIR}"])
    host.write_file(run.env_file, env_body, 0o600)
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


@dataclass(frozen=True)
class NodeRun:
    """One node's container as `up` wants it, and what `docker inspect` found there."""

    node: NodeRecord
    container: str
    env_file: str
    args: list[str]
    found: dict[str, Any] | None

    @property
    def running(self) -> bool:
        return self.found is not None and bool((self.found.get("State") or {}).get("Running"))

    def same_config(self, force: bool) -> bool:
        return (not force and self.found is not None
                and _label(self.found) == config_hash(_without_label(self.args)))

    def keep(self, force: bool) -> bool:
        """Running with this very configuration (and no --force): nothing to do."""
        return self.running and self.same_config(force)


def refuse_while_loading(preset: Preset, head: Host, changed: list[NodeRun],
                         serving: ServerTls | None = None) -> None:
    """The playbook's rule for a cluster: never restart containers while the replicas are
    still loading the model, unless --force (the load would start over). `serving`: the
    running head's certificate, when it serves HTTPS."""
    ready = probe_ready(head, preset.port, serving)
    if ready.loading:
        nodes = ", ".join(str(r.node.index) for r in changed)
        raise FluxdeployError(
            f"The cluster is still loading ({ready.describe()}) and the preset changed for "
            f"node(s) {nodes}.",
            fix="Wait for it to be ready (`fluxdeploy status`), or replace the containers now "
                "with `fluxdeploy up --force` (the load starts over).",
            doc="still-loading")


def _label(found: Mapping[str, Any]) -> str | None:
    label = ((found.get("Config") or {}).get("Labels") or {}).get(names.CONFIG_LABEL)
    return str(label) if label is not None else None


def _without_label(args: list[str]) -> list[str]:
    at = args.index("--label")
    while not args[at + 1].startswith(f"{names.CONFIG_LABEL}="):
        at = args.index("--label", at + 1)
    return [*args[:at], *args[at + 2:]]
