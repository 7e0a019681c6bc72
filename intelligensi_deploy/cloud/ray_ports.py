"""Ray's ports on a scale-out cluster, and the Lambda firewall rules for them. Pure.

Ray's ports have no authentication. Every Ray process is pinned to one contiguous range
(``RAY_PORT_RANGE``) so that one TCP rule per node covers it, with that node's public address
as a /32 ``source_network``: the cluster's own machines, never 0.0.0.0/0. Lambda's rules take
public IPv4 sources (the OpenAPI file says so); nothing here relies on how the private
network between instances is filtered. The Ray dashboard listens on 127.0.0.1 only (reach it
with an SSH tunnel); only the serving port follows the preset's ``exposure``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from intelligensi_deploy.cloud.lambda_types import FirewallRule
from intelligensi_deploy.errors import FluxdeployError


@dataclass(frozen=True)
class RayPorts:
    """Every port a Ray node listens on, inside one range (plus the loopback dashboard)."""

    gcs: int = 6379
    node_manager: int = 6380
    object_manager: int = 6381
    dashboard_agent_grpc: int = 6382
    dashboard_agent_listen: int = 6383
    metrics_export: int = 6384
    runtime_env_agent: int = 6385
    client_server: int = 6386  # Ray Client, on the head
    min_worker: int = 6400
    max_worker: int = 6499
    dashboard: int = 8265  # 127.0.0.1 only, never in a firewall rule

    @property
    def range(self) -> tuple[int, int]:
        return (self.gcs, self.max_worker)


RAY_PORTS = RayPorts()
RULE_PREFIX = "fluxdeploy ray"


def ray_start_args(role: str, ports: RayPorts = RAY_PORTS, *, head_address: str | None = None,
                   node_ip: str, resources: str | None = None) -> list[str]:
    """argv of ``ray start`` on the head (``role="head"``) or a worker, every port pinned to
    the one range, the dashboard on loopback, blocking (the container's main process)."""
    args = ["ray", "start", "--block", f"--node-ip-address={node_ip}",
            f"--node-manager-port={ports.node_manager}",
            f"--object-manager-port={ports.object_manager}",
            f"--dashboard-agent-grpc-port={ports.dashboard_agent_grpc}",
            f"--dashboard-agent-listen-port={ports.dashboard_agent_listen}",
            f"--metrics-export-port={ports.metrics_export}",
            f"--runtime-env-agent-port={ports.runtime_env_agent}",
            f"--min-worker-port={ports.min_worker}", f"--max-worker-port={ports.max_worker}"]
    if role == "head":
        args += ["--head", f"--port={ports.gcs}", f"--ray-client-server-port={ports.client_server}",
                 "--dashboard-host=127.0.0.1",
                 f"--dashboard-port={ports.dashboard}", "--disable-usage-stats"]
    elif role == "worker":
        if not head_address:
            raise ValueError("a worker needs the head's address")
        args.append(f"--address={head_address}:{ports.gcs}")
    else:
        raise ValueError(f"role must be head or worker, not {role!r}")
    if resources:
        args.append(f"--resources={resources}")
    return args


def _host_network(ip: str) -> str:
    try:
        address = ipaddress.IPv4Address(ip)
    except ValueError:
        raise FluxdeployError(f"{ip!r} is not a node's IPv4 address.",
                              fix="Check the node's `ip` in `fluxdeploy status`.",
                              doc="ray-ports") from None
    if address.is_unspecified:
        raise FluxdeployError("0.0.0.0 is not a node: Ray's ports are never opened to the world.",
                              doc="ray-ports")
    return f"{address}/32"


def ray_rule_description(deployment: str, ip: str) -> str:
    return f"{RULE_PREFIX} {deployment} node {ip}"[:128]


def ray_firewall_rules(deployment: str, node_ips: Sequence[str],
                       ports: RayPorts = RAY_PORTS) -> list[FirewallRule]:
    """One TCP rule per node: Ray's port range from that node's address only (/32)."""
    return [FirewallRule("tcp", ports.range, _host_network(ip),
                         ray_rule_description(deployment, ip))
            for ip in dict.fromkeys(node_ips)]


def merge_ray_rules(existing: Sequence[FirewallRule], deployment: str,
                    node_ips: Sequence[str], ports: RayPorts = RAY_PORTS) -> list[FirewallRule]:
    """The account's rule list with this cluster's Ray rules set to exactly ``node_ips``:
    other rules kept as they are, this cluster's rules for departed nodes dropped."""
    wanted = ray_firewall_rules(deployment, node_ips, ports)
    mine = f"{RULE_PREFIX} {deployment} node "
    kept = [rule for rule in existing if not (rule.description or "").startswith(mine)]
    return [*kept, *wanted]


def remove_ray_rules(existing: Sequence[FirewallRule], deployment: str) -> list[FirewallRule]:
    """The account's rules without any of this cluster's Ray rules (for ``down``)."""
    return merge_ray_rules(existing, deployment, ())


def world_open_ray_rules(rules: Sequence[FirewallRule], ports: RayPorts = RAY_PORTS
                         ) -> list[FirewallRule]:
    """Rules that let anything wider than one host reach a Ray port (what doctor flags)."""
    low, high = ports.range
    found = []
    for rule in rules:
        if rule.protocol not in ("tcp", "all"):
            continue
        if rule.protocol == "tcp" and (rule.port_range is None or rule.port_range[1] < low
                                       or rule.port_range[0] > high):
            continue
        try:
            network = ipaddress.IPv4Network(rule.source_network, strict=False)
        except ValueError:
            continue
        if network.prefixlen < 32:
            found.append(rule)
    return found
