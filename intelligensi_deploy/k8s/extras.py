"""The optional objects, off by default: an Ingress with TLS, a PodDisruptionBudget, and a
HorizontalPodAutoscaler left as a commented example. Pure."""

from __future__ import annotations

from typing import Any

from intelligensi_deploy.k8s import common
from intelligensi_deploy.k8s.render_types import dump
from intelligensi_deploy.presets import Preset


def ingress(preset: Preset, name: str, source: str) -> dict[str, Any] | None:
    """An Ingress to the Service, TLS from `tls_secret`; refused without the API keys."""
    settings = common.section(preset).ingress
    if settings is None:
        return None
    if not preset.auth_on:
        raise common.K8sRenderError(
            f"{source}: kubernetes.ingress: an Ingress puts the server on a network while "
            f"auth is off (exposure: {preset.exposure}); allowed: an Ingress with auth on",
            fix="set `exposure: public` (auth on, the API keys file from a Secret) or "
                "`auth: true`, or remove kubernetes.ingress and use kubectl port-forward")
    spec: dict[str, Any] = {
        "tls": [{"hosts": [settings.host], "secretName": settings.tls_secret}],
        "rules": [{"host": settings.host, "http": {"paths": [{
            "path": "/", "pathType": "Prefix", "backend": {"service": {
                "name": common.object_name(name), "port": {"name": "http"}}}}]}}]}
    if settings.class_name:
        spec["ingressClassName"] = settings.class_name
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": common.metadata(preset, name, common.object_name(name)), "spec": spec}


def disruption_budget(preset: Preset, name: str, selector: dict[str, Any],
                      available: int) -> dict[str, Any] | None:
    """Voluntary evictions (drains) wait while fewer than `available` pods would be left."""
    if not common.section(preset).disruption_budget:
        return None
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": common.metadata(preset, name, common.object_name(name)),
            "spec": {"minAvailable": available, "selector": selector}}


def autoscaler(preset: Preset, name: str) -> dict[str, Any]:
    """An HPA on the server's queue (flux_queue_depth per pod), for the plain Deployment."""
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": common.metadata(preset, name, common.object_name(name)),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": common.object_name(name)},
                     "minReplicas": 1, "maxReplicas": 3,
                     "metrics": [{"type": "Pods", "pods": {
                         "metric": {"name": "flux_queue_depth"},
                         "target": {"type": "AverageValue", "averageValue": "2"}}}]}}


AUTOSCALER_NOTE = """\
# A HorizontalPodAutoscaler on the server's queue, NOT applied (the file's extension keeps
# `kubectl apply -f DIR` away from it). It works only if:
#   - a metrics adapter (e.g. prometheus-adapter) serves the pods' flux_queue_depth (from
#     the server's /metrics) through the custom metrics API: plain Kubernetes has none;
#   - the HF cache is shared (a ReadWriteMany storage class) or per pod: the rendered claim
#     is ReadWriteOnce, which a second pod on another node cannot mount;
#   - the Deployment's strategy and replicas are yours to change (it renders one pod).
# For replicas that scale on load, a preset with scale: renders a RayService instead.
"""


def autoscaler_example(preset: Preset, name: str) -> str:
    """The HPA as a commented example file, with the reasons it is off."""
    body = "".join(f"# {line}\n" for line in dump(autoscaler(preset, name)).splitlines())
    return AUTOSCALER_NOTE + body
