"""`fluxdeploy status` for a record that holds something: the recorded facts joined with what
the machine says now (the container, `/ready` and the limits' deadline, each node of a
cluster). It changes nothing on the machine; the one thing it writes is the record of a
deployment whose instances Lambda says are gone (its watchdog ended it at a limit): phase
`down`, with the reason."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from intelligensi_deploy import names, secrets
from intelligensi_deploy.cloud.lambda_api import LambdaClient
from intelligensi_deploy.deploy.launch import instance_gone
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.health import probe_ready
from intelligensi_deploy.limits_view import deadline, ended_by
from intelligensi_deploy.machines import connect, connect_node
from intelligensi_deploy.remote.docker import Docker
from intelligensi_deploy.state import Deployment, NodeRecord, StateStore
from intelligensi_deploy.state_records import nothing_launched_message


def live_status(record: Mapping[str, Any], environ: Mapping[str, str] = os.environ
                ) -> dict[str, Any]:
    """State file facts plus container state and /ready, gathered read-only."""
    dep = Deployment.model_validate(record)
    ended = ended_at_a_limit(dep, environ)
    if ended is not None:
        dep = ended
    report: dict[str, Any] = dep.model_dump(exclude={"host_key"})
    report["container"] = None
    report["ready"] = None
    report["image_path"] = image_path(dep.image_source)
    if dep.phase == "down":
        return report
    if not dep.holds_resources:
        report["error"] = nothing_launched_message(report)
        return report
    try:
        host = connect(dep)
    except FluxdeployError as exc:
        report["error"] = exc.message
        return report
    try:
        found = Docker(host).inspect(dep.container_name)
        if found:
            report["container"] = container_facts(found)
            if (found.get("State") or {}).get("Running"):
                ready = probe_ready(host, dep.port, dep.tls)
                report["ready"] = {"state": ready.state, "detail": ready.describe(),
                                   "error": ready.error}
                report["limits"] = deadline(dep.idle_limit_s, dep.max_duration_s,
                                            dep.launched_at, ready.activity, time.time())
                if ready.cluster is not None:
                    report["ready"]["replicas_ready"] = ready.cluster.get("ready")
                    report["replicas"] = ready.cluster.get("replicas", [])
    except FluxdeployError as exc:
        report["error"] = exc.message
    finally:
        host.close()
    if dep.is_cluster:
        report["nodes"] = [node_status(dep, node, report["container"] if node.index == 1
                                       else None) for node in dep.nodes]
    return report


def ended_at_a_limit(dep: Deployment, environ: Mapping[str, str]) -> Deployment | None:
    """The record, saved as `down` with the reason, when Lambda says every instance of the
    deployment is gone (its watchdog ended it, or someone did in the dashboard); None while
    one runs, and when no API key is at hand to ask."""
    ids: list[str | None] = [n.instance_id for n in dep.nodes if n.instance_id]
    ids = ids or [dep.instance_id]
    if dep.provider != "lambda" or not all(ids) or secrets.lambda_api_key(environ) is None:
        return None
    try:
        with LambdaClient.from_env(environ) as client:
            if not all(instance_gone(client, i) for i in ids if i):
                return None
    except FluxdeployError:
        return None  # Lambda did not answer: the live view below says what it can
    reason, line = ended_by(watchdog_log(dep))
    nodes = [n.model_copy(update={"instance_id": None, "ip": None, "host_key": None})
             for n in dep.nodes]
    return StateStore().save(dep.model_copy(update={
        "phase": "down", "down_reason": reason, "watchdog_line": line, "instance_id": None,
        "ip": None, "host_key": None, "launched_at": None, "nodes": nodes}))


def watchdog_log(dep: Deployment) -> str | None:
    """The last lines of the watchdog's log, if its machine still answers (a terminated VM
    usually does not)."""
    try:
        host = connect(dep)
    except FluxdeployError:
        return None
    try:
        return Docker(host).logs(names.watchdog_name(dep.name), tail=20)
    except FluxdeployError:
        return None
    finally:
        host.close()


def container_facts(found: Mapping[str, Any]) -> dict[str, Any]:
    """What status shows of a `docker inspect` object."""
    state = found.get("State") or {}
    return {"status": state.get("Status"), "exit_code": state.get("ExitCode"),
            "oom_killed": state.get("OOMKilled"), "restart_count": found.get("RestartCount"),
            "image": (found.get("Config") or {}).get("Image")}  # the tag running


def node_status(dep: Deployment, node: NodeRecord, head_container: dict[str, Any] | None
                ) -> dict[str, Any]:
    """One node of a cluster: its record and its container, seen on the node itself (node 1's
    was seen above); a node that cannot be reached says so instead."""
    row: dict[str, Any] = {"index": node.index, "role": node.role, "ip": node.ip,
                           "instance_id": node.instance_id, "container_name": node.container_name,
                           "container": head_container, "error": None}
    if node.index == 1:
        return row
    try:
        host = connect_node(dep, node)
        try:
            found = Docker(host).inspect(node.container_name)
            row["container"] = container_facts(found) if found else {"status": "missing"}
        finally:
            host.close()
    except FluxdeployError as exc:
        row["error"] = exc.message
    return row


def image_path(source: str | None) -> str:
    """How the deployment's image got to the host."""
    return {"bundled": "built on the host (bundled)", "registry": "pulled from the registry"
            }.get(source or "", "unknown")
