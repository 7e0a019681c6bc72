"""The server's container and pod spec on Kubernetes: environment, probes, security, volumes.

The environment is the one `up` gives the container (container_plan.container_spec), minus
the VM-only parts: no env file (HF_TOKEN comes from a Secret by reference), no TLS files (TLS
ends at the Ingress or load balancer), the API keys file from a Secret when `auth` is on.
"""

from __future__ import annotations

import math
from typing import Any

from intelligensi_deploy import names
from intelligensi_deploy.container_plan import server_secrets_env
from intelligensi_deploy.k8s import common
from intelligensi_deploy.k8s.resources import PodResources
from intelligensi_deploy.presets import Preset

PROBE_PERIOD_S = 10
TMP_MOUNT = "/tmp"
API_KEYS_ENV = "FLUX_API_KEYS_FILE"


def server_env(preset: Preset, name: str, port: int = common.HTTP_PORT
               ) -> list[dict[str, Any]]:
    """The container's variables, sorted by name; secrets only as references."""
    plain = {"PORT": str(port), "HOME": TMP_MOUNT, "HF_HOME": common.HF_CACHE_MOUNT,
             **preset.server.container_env(), **preset.scale_env(), **preset.env}
    if preset.gpus:
        plain["FLUX_REQUIRE_GPU"] = "1"
    if preset.auth_on:
        plain[API_KEYS_ENV] = server_secrets_env(preset)[API_KEYS_ENV]
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(plain.items())]
    token = {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
        "name": common.hf_token_secret(name), "key": "HF_TOKEN",
        # a gated model cannot load without it: the pod waits for the Secret instead
        "optional": not preset.gated}}}
    return sorted([*env, token], key=lambda item: str(item["name"]))


def probes(preset: Preset) -> dict[str, Any]:
    """startup on /ready covering ready_timeout, readiness on /ready, liveness on /health."""
    def get(path: str, period: int, failures: int) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period,
                "timeoutSeconds": 5, "failureThreshold": failures}
    return {"startupProbe": get("/ready", PROBE_PERIOD_S,
                                math.ceil(preset.ready_timeout / PROBE_PERIOD_S)),
            "readinessProbe": get("/ready", PROBE_PERIOD_S, 3),
            "livenessProbe": get("/health", 20, 3)}


def container_security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}


def pod_security(preset: Preset) -> dict[str, Any]:
    uid = common.section(preset).run_as_user
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"}}


def server_container(preset: Preset, name: str, image: str, resources: PodResources,
                     *, port: int = common.HTTP_PORT) -> dict[str, Any]:
    """The `server` container: image, port, env, probes, resources, security, mounts."""
    mounts: list[dict[str, Any]] = [{"name": "hf-cache", "mountPath": common.HF_CACHE_MOUNT},
              {"name": "tmp", "mountPath": TMP_MOUNT}]
    if preset.auth_on:
        mounts.append({"name": "api-keys", "mountPath": names.SECRETS_MOUNT, "readOnly": True})
    container: dict[str, Any] = {
        "name": "server", "image": image,
        "imagePullPolicy": "Always" if preset.pull == "always" else "IfNotPresent",
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": server_env(preset, name, port),
        "resources": resources.as_k8s(common.section(preset).gpu_resource),
        "securityContext": container_security(), "volumeMounts": mounts, **probes(preset)}
    return container


def volumes(preset: Preset, name: str, cache: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod's volumes: the HF cache (`cache`: its source), /tmp, the API keys Secret."""
    found: list[dict[str, Any]] = [{"name": "hf-cache", **cache}, {"name": "tmp", "emptyDir": {}}]
    if preset.auth_on:
        found.append({"name": "api-keys", "secret": {
            "secretName": common.api_keys_secret(name), "defaultMode": 0o440,
            "items": [{"key": names.API_KEYS_FILE, "path": names.API_KEYS_FILE}]}})
    return found


def placement(preset: Preset) -> dict[str, Any]:
    """nodeSelector and tolerations from the `kubernetes:` section (none when empty)."""
    k8s = common.section(preset)
    found: dict[str, Any] = {}
    if k8s.node_selector:
        found["nodeSelector"] = dict(sorted(k8s.node_selector.items()))
    if k8s.tolerations:
        found["tolerations"] = [t.model_dump(exclude_none=True) for t in k8s.tolerations]
    return found
