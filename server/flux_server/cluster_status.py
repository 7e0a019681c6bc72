"""The /ready body of a Ray Serve cluster, from what each replica last reported. Pure.

Each replica pushes its LoadState snapshot (docs/contract.md) about every second. A replica
that stopped reporting (its node or process is gone) is shown as `lost` for a while, then
forgotten; a replica whose load failed is shown as `failed` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LOST_AFTER_S = 5.0  # no report for this long: the replica (or its node) is gone
FORGET_LOST_AFTER_S = 300.0  # lost and failed entries stay visible this long


@dataclass(frozen=True)
class ReplicaReport:
    """One replica's last report: who, where, its load state, and when it was sent."""

    replica: str
    node_id: str
    node_ip: str
    snapshot: dict
    reported_at: float
    final: bool = False  # the replica said goodbye (scaled down) or its load failed


@dataclass
class ClusterView:
    """What /ready shows for the cluster."""

    replicas: list[dict] = field(default_factory=list)
    ready_count: int = 0
    expected: int = 0
    min_ready: int = 1

    @property
    def ready(self) -> bool:
        return self.ready_count >= self.min_ready

    @property
    def state(self) -> str:
        """The cluster's one-word state: ready, or the least advanced live replica's state."""
        if self.ready:
            return "ready"
        live = [r["state"] for r in self.replicas if r["state"] not in ("lost", "gone")]
        order = ("failed", "starting", "downloading", "loading", "warming", "ready")
        if not live:
            return "starting"
        if all(s == "failed" for s in live):
            return "failed"
        return min((s for s in live if s != "failed"), key=order.index)

    def as_dict(self) -> dict:
        return {"ready": f"{self.ready_count}/{self.expected}", "ready_replicas": self.ready_count,
                "expected_replicas": self.expected, "min_ready": self.min_ready,
                "replicas": self.replicas}


def replica_phase(report: ReplicaReport, now: float) -> str:
    """ready / loading / ... as the replica said, or `lost` when it stopped reporting."""
    state = report.snapshot.get("state", "starting")
    if report.final and state != "failed":
        return "gone"
    if state != "failed" and now - report.reported_at > LOST_AFTER_S:
        return "lost"
    return state


def cluster_view(reports: list[ReplicaReport], now: float, min_ready: int,
                 min_replicas: int, serve_target: int = 0) -> ClusterView:
    """Join the replicas' reports into one view. `expected` is the most of `min_replicas`,
    the replicas alive, and Serve's own count (`serve_target`: running + starting, which
    includes a replacement still waiting for a node)."""
    rows, live = [], 0
    ready = 0
    for report in sorted(reports, key=lambda r: (r.node_ip, r.replica)):
        phase = replica_phase(report, now)
        age = now - report.reported_at
        if phase in ("lost", "failed", "gone") and age > FORGET_LOST_AFTER_S:
            continue
        if phase == "gone":
            continue
        snapshot = report.snapshot
        rows.append({"replica": report.replica, "node_id": report.node_id,
                     "node_ip": report.node_ip, "state": phase,
                     "progress": snapshot.get("progress", {}),
                     "elapsed_s": snapshot.get("elapsed_s"),
                     "last_report_s": round(age, 1), "error": snapshot.get("error")})
        if phase not in ("lost", "failed"):
            live += 1
        if phase == "ready":
            ready += 1
    return ClusterView(rows, ready, max(min_replicas, live, serve_target), min_ready)


def serve_target(replica_states: dict[str, int]) -> int:
    """Replicas Serve means to run, from its per-state counts (stopping ones excluded)."""
    return sum(n for state, n in replica_states.items()
               if state.upper().rsplit(".", 1)[-1] in ("RUNNING", "STARTING", "UPDATING",
                                                       "RECOVERING", "PENDING_MIGRATION"))


def lost_nodes(view: ClusterView) -> list[str]:
    """Addresses of nodes whose every replica is lost (what `doctor` names)."""
    by_node: dict[str, set[str]] = {}
    for row in view.replicas:
        by_node.setdefault(row["node_ip"], set()).add(row["state"])
    return sorted(ip for ip, states in by_node.items() if states == {"lost"})
