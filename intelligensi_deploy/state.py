"""What was deployed where: one small JSON file per deployment, never holding a secret.

Files live in ``$FLUXDEPLOY_HOME/deployments`` (default ``~/.local/state/fluxdeploy``), are
written atomically (temp file + ``os.replace``) with mode 0600, so a crash or Ctrl-C mid-write
never leaves a half file, and a launched instance is never forgotten.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.state_records import holds_resources, read_records, state_root
from intelligensi_deploy.tls_pin import ServerTls

__all__ = ["Deployment", "NodeRecord", "Phase", "StateError", "StateStore", "Tracker",
           "build_log_path", "drop_node", "set_node", "state_root"]

Phase = Literal["launching", "booting", "deploying", "loading", "ready", "failed", "down"]


class StateError(FluxdeployError):
    """No such deployment, or an ambiguous choice."""


class NodeRecord(BaseModel):
    """One node of a multi-node (Ray Serve) cluster: node 1 is the Ray head and the endpoint."""

    model_config = ConfigDict(extra="ignore")

    index: int
    name: str  # the Lambda instance name, fluxdeploy-<deployment>-node<index>
    instance_id: str | None = None
    region: str | None = None
    ip: str | None = None
    host_key: str | None = None
    container_name: str = ""
    launched_at: float | None = None  # when Lambda gave its id (epoch seconds)

    @property
    def role(self) -> str:
        return "head" if self.index == 1 else "worker"


class Deployment(BaseModel):
    """The record of one deployment. Fields are facts, never credentials.

    A multi-node cluster lists every node in `nodes` (node 1 first); the top-level
    instance_id / ip / host_key / container_name are node 1's, so every command that talks to
    "the deployment" (logs, tunnel, generate, open) talks to the head, where the endpoint is.
    `firewall_ruleset_id` is the deployment's own Lambda firewall ruleset (SSH, the public
    port, a cluster's Ray rules), attached to its instances at launch. `firewall_rule` and
    `ray_rule_ips` are what an earlier fluxdeploy wrote into the account-wide legacy rules
    (the public port's rule; the node addresses with a Ray /32 rule): kept so `down` removes
    them.
    """

    model_config = ConfigDict(extra="ignore")

    name: str
    preset: str
    provider: Literal["lambda", "ssh", "local"]
    phase: Phase = "launching"
    instance_id: str | None = None
    instance_type: str | None = None
    region: str | None = None
    ip: str | None = None
    ssh_user: str | None = None
    ssh_port: int | None = None
    ssh_key_path: str | None = None
    host_key: str | None = None
    container_name: str = ""
    image: str = ""
    image_source: Literal["bundled", "registry"] | None = None  # built on the host, or pulled
    # the bundled image's build settings as built, and the preset's then (bundle/settings.py)
    build_settings: dict[str, Any] | None = None
    port: int = 8000
    exposure: Literal["tunnel", "public"] = "tunnel"
    auth: bool = False  # the server checks API keys; the key is beside this record (api_keys.py)
    timeline: dict[str, Any] = {}  # where the time to ready went (timeline.py)
    file_system: str | None = None  # the Lambda file system holding the HF cache (kept by down)
    tls_cert: str | None = None  # HTTPS: the server's certificate (PEM), pinned (tls_pin.py)
    tls_fingerprint: str | None = None  # its SHA-256 fingerprint, as clients compare it
    tls_expires_at: float | None = None  # when it stops being valid (doctor warns 14 days out)
    firewall_rule: dict[str, Any] | None = None  # legacy, account-wide (older records)
    firewall_ruleset_id: str | None = None  # this deployment's own ruleset (cloud/rulesets.py)
    launched_at: float | None = None  # the instance's launch (node 1's for a cluster)
    price_cents_per_hour: int | None = None  # per instance, from GET /instance-types at launch
    idle_limit_s: float | None = None  # the limits in force (preset_limits.py), None: off
    max_duration_s: float | None = None
    down_reason: str | None = None  # why it went down without `fluxdeploy down` (a limit)
    watchdog_line: str | None = None  # the watchdog's line saying so, when it could be read
    nodes: list[NodeRecord] = []
    ray_rule_ips: list[str] = []
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def active(self) -> bool:
        return self.phase != "down"

    @property
    def holds_resources(self) -> bool:
        """Whether anything exists to clean up (an instance, a firewall ruleset or rule, a
        container)."""
        return holds_resources(self.model_dump(include={"provider", "instance_id",
                                                        "firewall_rule", "phase", "nodes",
                                                        "ray_rule_ips",
                                                        "firewall_ruleset_id"}))

    @property
    def tls(self) -> ServerTls | None:
        """The pinned certificate of an HTTPS server, None for plain HTTP."""
        if not (self.tls_cert and self.tls_fingerprint):
            return None
        return ServerTls(self.name, self.tls_cert, self.tls_fingerprint)

    @property
    def is_cluster(self) -> bool:
        return len(self.nodes) > 1

    def node(self, index: int) -> NodeRecord:
        """Node `index` (1 = the head); StateError naming the nodes there are."""
        for node in self.nodes:
            if node.index == index:
                return node
        known = ", ".join(str(n.index) for n in self.nodes) or "none (one VM)"
        raise StateError(f"Deployment {self.name!r} has no node {index} (nodes: {known}).",
                         fix="Run `fluxdeploy status` to see the nodes.")


class StateStore:
    """Deployments on disk, one atomic JSON file each."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or state_root()) / "deployments"

    def path(self, name: str) -> Path:
        return self.root / f"{name}.json"

    def save(self, deployment: Deployment) -> Deployment:
        """Write `deployment` atomically (0600) and return it with `updated_at` set."""
        now = time.time()
        updates = {"updated_at": now} | ({} if deployment.created_at else {"created_at": now})
        deployment = deployment.model_copy(update=updates)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{deployment.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(deployment.model_dump_json(indent=2))
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path(deployment.name))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return deployment

    def load(self, name: str) -> Deployment | None:
        path = self.path(name)
        if not path.is_file():
            return None
        return Deployment.model_validate(json.loads(path.read_text(encoding="utf-8")))

    def list(self) -> list[Deployment]:
        """All deployments, most recently updated first."""
        return [Deployment.model_validate(r) for r in read_records(self.root)]

    def delete(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def resolve(self, name: str | None) -> Deployment:
        """The named deployment, else the most recent active one that holds something (an
        instance, a container), else the most recent active one, else the most recent one."""
        if name:
            found = self.load(name)
            if found is None:
                known = ", ".join(d.name for d in self.list()) or "none"
                raise StateError(
                    f"No deployment named {name!r} (known: {known}).",
                    fix="Run `fluxdeploy status` to list deployments, or `fluxdeploy up`.",
                )
            return found
        deployments = self.list()
        if not deployments:
            raise StateError(
                f"No deployment recorded in {self.root}.",
                fix="Start one with `fluxdeploy up --preset local` (or another preset).",
            )
        active = [d for d in deployments if d.active]
        holding = [d for d in active if d.holds_resources]
        return (holding or active or deployments)[0]


def build_log_path(store: StateStore, name: str) -> Path:
    """Where the last failed build of deployment `name` is recorded (for `doctor`)."""
    return store.root / f"{name}.build.log"


class Tracker:
    """The deployment record, saved to disk on every change once it is recorded.

    A record exists only while something exists to track: a new deployment stays in memory
    until `record()` (the instance is launched, or the container and its secrets file are
    about to be created), so a failure before that leaves no phantom behind. `forget()`
    deletes the file again (the recorded instance turned out to be gone).
    """

    def __init__(self, store: StateStore, deployment: Deployment, *, recorded: bool = True
                 ) -> None:
        self.store = store
        self.recorded = recorded
        self.dep = store.save(deployment) if recorded else deployment

    def update(self, **fields: Any) -> Deployment:
        dep = self.dep.model_copy(update=fields)
        self.dep = self.store.save(dep) if self.recorded else dep
        return self.dep

    def record(self, **fields: Any) -> Deployment:
        """Start saving (now, with `fields`, and on every later change)."""
        self.recorded = True
        return self.update(**fields)

    def forget(self) -> None:
        """Delete the record and stop saving until `record()` is called again."""
        self.store.delete(self.dep.name)
        self.recorded = False


def set_node(tracker: Tracker, node: NodeRecord) -> Deployment:
    """Save `node` into the record (replacing the node of its index). Node 1 is mirrored in
    the top-level fields, which every single-endpoint command reads."""
    nodes = sorted([*(n for n in tracker.dep.nodes if n.index != node.index), node],
                   key=lambda n: n.index)
    fields: dict[str, Any] = {"nodes": nodes}
    if node.index == 1:
        fields.update(instance_id=node.instance_id, ip=node.ip, host_key=node.host_key,
                      region=node.region, container_name=node.container_name,
                      launched_at=node.launched_at)
    return tracker.update(**fields) if tracker.recorded else tracker.record(**fields)


def drop_node(tracker: Tracker, index: int) -> Deployment:
    """Remove node `index` from the record (node 1: its mirrored top-level fields too)."""
    nodes = [n for n in tracker.dep.nodes if n.index != index]
    fields: dict[str, Any] = {"nodes": nodes}
    if index == 1:
        fields.update(instance_id=None, ip=None, host_key=None, launched_at=None)
    return tracker.update(**fields)
