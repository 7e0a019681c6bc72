"""`down` for a multi-node cluster: every node's container and env file, the legacy
account-wide rules an earlier fluxdeploy recorded for it, every instance, then the
deployment's firewall ruleset. A node that cannot be reached is terminated anyway (that
removes its container too)."""

from __future__ import annotations

from intelligensi_deploy import names
from intelligensi_deploy.cloud import provision
from intelligensi_deploy.cloud.lambda_api import LambdaClient
from intelligensi_deploy.deploy.firewall import delete_deployment_ruleset, remove_legacy_rules
from intelligensi_deploy.deploy.reporter import Reporter
from intelligensi_deploy.deploy.steps import remote_home
from intelligensi_deploy.deploy.watchdog import remove_watchdog
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.machines import connect_node
from intelligensi_deploy.remote.docker import Docker
from intelligensi_deploy.remote.secret_volume import remove_volume
from intelligensi_deploy.state import Deployment, StateStore, Tracker, drop_node


def down_cluster(dep: Deployment, store: StateStore, ui: Reporter,
                 client: LambdaClient) -> Deployment:
    """Every node's container and env file, the legacy rules, every instance, the ruleset:
    gone. A node that cannot be reached is terminated anyway."""
    tracker = Tracker(store, dep)
    for node in dep.nodes:
        if not node.ip:
            continue
        try:
            host = connect_node(dep, node)
            try:
                if node.index == 1:
                    remove_watchdog(dep.name, host, Docker(host), ui)
                if node.container_name and Docker(host).remove(node.container_name):
                    ui.step(f"Node {node.index}: removed container {node.container_name}")
                if node.index == 1:
                    remove_volume(Docker(host), names.secrets_volume(dep.name))
                host.run(["rm", "-f", names.env_file_path(remote_home(host), dep.name,
                                                          node.index)])
            finally:
                host.close()
        except FluxdeployError as exc:
            ui.warn(f"Could not reach node {node.index} ({node.ip}) to remove its container "
                    f"({exc.message}); terminating the instance removes it anyway.")
    remove_legacy_rules(dep, tracker, ui, client)
    for node in dep.nodes:
        if node.instance_id:
            if provision.terminate_if_present(client, node.instance_id):
                ui.step(f"Node {node.index}: terminated instance {node.instance_id} "
                        "(billing stops)")
            else:
                ui.detail(f"node {node.index}: instance {node.instance_id} was already gone")
        drop_node(tracker, node.index)
    tracker.update(instance_id=None, ip=None, host_key=None, launched_at=None, tls_cert=None,
                   tls_fingerprint=None, tls_expires_at=None)
    delete_deployment_ruleset(tracker, ui, client)
    return tracker.update(phase="down")
