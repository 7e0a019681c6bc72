"""A preset without `scale:` as core objects: Deployment, Service, PersistentVolumeClaim.

One pod with the preset's GPU(s), `Recreate` (the GPU and the ReadWriteOnce cache cannot be
held by an old and a new pod at once), a ClusterIP Service (reach it with `kubectl
port-forward`, or put an Ingress with TLS in front of a public one), and a claim for the HF
cache so that a new pod does not download the weights again.
"""

from __future__ import annotations

from typing import Any

from intelligensi_deploy.k8s import common, pod
from intelligensi_deploy.k8s.resources import pod_resources
from intelligensi_deploy.presets import Preset

GRACE_S = 60  # the server finishes the generation in progress on SIGTERM


def deployment(preset: Preset, name: str, image: str) -> dict[str, Any]:
    resources = pod_resources(preset)
    spec: dict[str, Any] = {
        "securityContext": pod.pod_security(preset),
        "terminationGracePeriodSeconds": GRACE_S,
        "automountServiceAccountToken": False,
        "containers": [pod.server_container(preset, name, image, resources)],
        "volumes": pod.volumes(preset, name, {"persistentVolumeClaim": {
            "claimName": common.cache_claim(name)}}),
        **pod.placement(preset)}
    meta = common.metadata(preset, name, common.object_name(name))
    meta["annotations"] = {"fluxdeploy/resources": resources.reason}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": 1, "strategy": {"type": "Recreate"},
                     "selector": {"matchLabels": common.selector(name)},
                     "template": {"metadata": {"labels": common.labels(preset, name)},
                                  "spec": spec}}}


def service(preset: Preset, name: str, selector: dict[str, str] | None = None
            ) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": common.metadata(preset, name, common.object_name(name)),
            "spec": {"type": "ClusterIP", "selector": selector or common.selector(name),
                     "ports": [{"name": "http", "port": preset.port, "targetPort": "http",
                                "protocol": "TCP"}]}}


def cache_claim(preset: Preset, name: str) -> dict[str, Any]:
    k8s = common.section(preset)
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": k8s.cache_size}}}
    if k8s.storage_class:
        spec["storageClassName"] = k8s.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": common.metadata(preset, name, common.cache_claim(name)), "spec": spec}
