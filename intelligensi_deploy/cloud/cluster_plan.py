"""Launching the N nodes of a scale-out cluster in one region, or none of them.

``plan_cluster_launch`` is pure: from the capacity listing, the preset's regions and the nodes
already recorded in state (a resumed ``up``), it picks the one region and the nodes still to
launch, or refuses up front (nothing launched) when no usable region lists capacity.
``launch_cluster`` runs the plan; when capacity or quota runs out part way, it terminates
every node of the cluster at once and stops with a clear choice: never a half-billed cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from intelligensi_deploy.cloud.lambda_api import LambdaClient
from intelligensi_deploy.cloud.lambda_errors import InsufficientCapacity, QuotaExceeded
from intelligensi_deploy.cloud.lambda_types import InstanceType
from intelligensi_deploy.cloud.provision import (
    FIREWALL_EXEMPT_REGIONS,
    describe_alternatives,
    find_type,
    terminate_if_present,
)
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.names import instance_tags, node_name


class ClusterCapacityError(FluxdeployError):
    """The cluster's nodes cannot all be launched in one region now."""


@dataclass(frozen=True)
class RecordedNode:
    """A node already launched (from state): its name, instance id and region."""

    name: str
    instance_id: str
    region: str


@dataclass(frozen=True)
class ClusterLaunchPlan:
    """Where the cluster goes and which nodes are still to be launched (in order)."""

    instance_type: str
    region: str
    node_names: tuple[str, ...]  # every node, node 1 (the Ray head) first
    to_launch: tuple[str, ...]
    fallback_regions: tuple[str, ...] = ()  # other regions, usable while nothing is launched
    deployment: str = ""  # tagged on every node at launch
    price_cents_per_hour: int = 0  # per node

    def tags(self, name: str) -> dict[str, str]:
        """The launch tags of node `name` (its deployment and its index)."""
        return instance_tags(self.deployment, self.node_names.index(name) + 1)


def node_names(deployment: str, nodes: int) -> tuple[str, ...]:
    """``fluxdeploy-<name>-node1`` ... (node 1 is the Ray head)."""
    return tuple(node_name(deployment, i) for i in range(1, nodes + 1))


def _choices(nodes: int, instance_type: str, types: Sequence[InstanceType]) -> str:
    return ("Choose one: run `fluxdeploy up` again later; lower scale.nodes (below "
            f"{nodes}); or pick another instance type for all {nodes} nodes. Capacity now: "
            f"{describe_alternatives(types)}.")


def plan_cluster_launch(instance_types: Sequence[InstanceType], instance_type: str,
                        preferred_regions: Sequence[str], deployment: str, nodes: int,
                        recorded: Sequence[RecordedNode] = ()) -> ClusterLaunchPlan:
    """The region and the nodes to launch; ClusterCapacityError before any launch when no
    usable region lists capacity (a multi-node cluster skips regions where Lambda's firewall
    does not apply: Ray's ports have no authentication and must not be open to the world)."""
    names = node_names(deployment, nodes)
    chosen = find_type(instance_types, instance_type)
    available = chosen.regions_with_capacity_available
    price = chosen.price_cents_per_hour
    done = {node.name for node in recorded}
    missing = tuple(name for name in names if name not in done)
    if recorded:
        regions = {node.region for node in recorded}
        if len(regions) > 1:
            raise ClusterCapacityError(
                f"The recorded nodes of {deployment!r} are in several regions "
                f"({', '.join(sorted(regions))}); a Ray cluster needs one region.",
                fix="Run `fluxdeploy down` and `fluxdeploy up` again.", doc="cluster-capacity")
        region = regions.pop()
        if missing and region not in available:
            raise ClusterCapacityError(
                f"{len(done)} of {nodes} nodes of {deployment!r} run in {region}, which lists "
                f"no capacity for {instance_type} now; the other "
                f"{len(missing)} cannot be launched there.",
                fix="Run `fluxdeploy up` again later to finish the cluster, or `fluxdeploy "
                    "down` to stop paying for the nodes already running.",
                doc="cluster-capacity")
        return ClusterLaunchPlan(instance_type, region, names, missing,
                                 deployment=deployment, price_cents_per_hour=price)
    wanted = list(dict.fromkeys(preferred_regions)) or list(available)
    usable = [r for r in wanted if r in available
              and (nodes == 1 or r not in FIREWALL_EXEMPT_REGIONS)]
    if not usable:
        exempt = [r for r in wanted if r in available and r in FIREWALL_EXEMPT_REGIONS]
        why = (f" ({', '.join(exempt)} has capacity, but Lambda's firewall rules do not "
               "apply there, so Ray's unauthenticated ports could not be closed to the world)"
               if exempt else "")
        where = ", ".join(wanted) if preferred_regions else "any region"
        raise ClusterCapacityError(
            f"No capacity for {nodes} x {instance_type} in {where}{why}. Nothing was launched.",
            fix=_choices(nodes, instance_type, instance_types), doc="cluster-capacity")
    return ClusterLaunchPlan(instance_type, usable[0], names, missing, tuple(usable[1:]),
                             deployment=deployment, price_cents_per_hour=price)


def launch_cluster(client: LambdaClient, plan: ClusterLaunchPlan, ssh_key_name: str, *,
                   recorded: Sequence[RecordedNode] = (),
                   on_launched: Callable[[RecordedNode], None],
                   on_terminated: Callable[[RecordedNode], None] = lambda node: None,
                   firewall_rulesets: Callable[[str], Sequence[str]] | None = None,
                   ) -> list[RecordedNode]:
    """Launch ``plan.to_launch`` one at a time (Lambda takes one instance per call).

    ``on_launched`` records each node the moment its id is known. A region that refuses the
    first node moves on to the next fallback region; a refusal after that terminates every
    node of the cluster (``on_terminated`` for each) and raises ClusterCapacityError.
    ``firewall_rulesets(region)`` gives the ruleset ids every node launched there carries
    (asked once per region, before its first launch).
    """
    nodes = list(recorded)
    regions = [plan.region, *plan.fallback_regions] if not recorded else [plan.region]
    for region in regions:
        rulesets: Sequence[str] | None = None
        try:
            for name in plan.to_launch:
                if rulesets is None and firewall_rulesets is not None:
                    rulesets = firewall_rulesets(region)
                ids = client.launch(region, plan.instance_type, ssh_key_name, name=name,
                                    tags=plan.tags(name), firewall_rulesets=rulesets)
                node = RecordedNode(name, ids[0], region)
                nodes.append(node)
                on_launched(node)
            return nodes
        except (InsufficientCapacity, QuotaExceeded) as exc:
            if len(nodes) == len(recorded) and region != regions[-1]:
                continue  # nothing launched here yet: try the next region
            _roll_back(client, nodes, on_terminated)
            reason = "quota" if isinstance(exc, QuotaExceeded) else "capacity"
            outcome = (f"All {len(nodes)} were terminated at once: nothing is billing."
                       if nodes else "Nothing was launched.")
            raise ClusterCapacityError(
                f"Only {len(nodes)} of {len(plan.node_names)} nodes ({plan.instance_type}) "
                f"could be launched in {region} before Lambda refused for lack of {reason}. "
                + outcome,
                fix=_choices(len(plan.node_names), plan.instance_type,
                             client.instance_types()),
                doc="cluster-capacity") from None
    raise AssertionError("unreachable")  # pragma: no cover


def _roll_back(client: LambdaClient, nodes: Sequence[RecordedNode],
               on_terminated: Callable[[RecordedNode], None]) -> None:
    for node in nodes:
        terminate_if_present(client, node.instance_id)
        on_terminated(node)
