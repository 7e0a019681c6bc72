"""A preset with `scale:` as a KubeRay RayService, plus the Service of its endpoint.

The head pod runs Ray's head (no GPU) and, beside it, the server's HTTP API (`server`), which
joins the Ray cluster (FLUX_RAY_ADDRESS=auto over the shared /tmp) and the application that
KubeRay deploys from serveConfigV2 (FLUX_SERVE_MANAGED=1): the same application as on VMs
(server/flux_server/serve_app.py `build`, from the same FLUX_* variables). Each worker pod is
one replica on one GPU, between the preset's min_replicas and max_replicas. Ray's token
authentication (RAY_AUTH_MODE=token) takes its token from a Secret the user creates.
"""

from __future__ import annotations

from typing import Any

from intelligensi_deploy import names
from intelligensi_deploy.k8s import common, pod, workload
from intelligensi_deploy.k8s.render_types import Manifest, dump
from intelligensi_deploy.k8s.resources import PodResources, pod_resources
from intelligensi_deploy.presets import Preset

RAY_VERSION = "2.60.0"  # server/pyproject.toml's `scale` extra pins ray[serve] to it
SERVE_APP = "flux"  # flux_server.serve_app.APP_NAME
SERVE_IMPORT_PATH = "flux_server.serve_app:build"
RAY_TOKEN_KEY = "auth_token"  # the key KubeRay's authOptions.secretName Secret must hold
RAY_TOKEN_ENV = "RAY_AUTH_TOKEN"
API_PORT = 8080  # the server's API in the head pod (Ray Serve's proxy keeps 8000)
AGENT_PORT = 52365  # Ray's dashboard agent: /api/healthz (what KubeRay probes on Ray 2.60)
HEAD_RESOURCES = PodResources(gpus=0, memory_gib=8, cpu="2", reason="Ray's head: GCS, "
                              "dashboard, Serve's controller; no model")
API_RESOURCES = PodResources(gpus=0, memory_gib=4, cpu="1", reason="the HTTP API; no model")
ENDPOINT_LABEL = {"app.kubernetes.io/component": "endpoint"}


def ray_token_secret(name: str) -> str:
    return f"{names.PREFIX}-{name}-ray-token"


def manifests(preset: Preset, name: str, image: str) -> list[Manifest]:
    return [Manifest("20-rayservice.yaml", rayservice(preset, name, image)),
            Manifest("30-service.yaml", workload.service(
                preset, name, {**common.selector(name), **ENDPOINT_LABEL}))]


def serve_env(preset: Preset) -> dict[str, str]:
    """The FLUX_* variables the application is built from (no secret among them)."""
    env = {**preset.server.container_env(), **preset.scale_env(), **preset.env,
           **({"FLUX_REQUIRE_GPU": "1"} if preset.gpus else {})}
    env.pop("FLUX_RAY_ADDRESS", None)  # the endpoint's, not the application's
    return env


def serve_config(preset: Preset) -> str:
    """serveConfigV2: the one application, built by serve_app.build from serve_env."""
    app = {"name": SERVE_APP, "import_path": SERVE_IMPORT_PATH, "route_prefix": None,
           "runtime_env": {"env_vars": dict(sorted(serve_env(preset).items()))}}
    return dump({"applications": [app]})


def _ray_env(name: str) -> list[dict[str, Any]]:
    return [{"name": "RAY_AUTH_MODE", "value": "token"},
            {"name": RAY_TOKEN_ENV, "valueFrom": {"secretKeyRef": {
                "name": ray_token_secret(name), "key": RAY_TOKEN_KEY}}}]


def _agent_probe(failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": "/api/healthz", "port": AGENT_PORT}, "periodSeconds": 5,
            "timeoutSeconds": 2, "failureThreshold": failures}


def _ray_container(preset: Preset, name: str, image: str, role: str,
                   resources: PodResources) -> dict[str, Any]:
    """A Ray container (KubeRay writes its `ray start` command): env, resources, security."""
    env = [*pod.server_env(preset, name), *_ray_env(name)]
    mounts = [{"name": "tmp", "mountPath": pod.TMP_MOUNT}]
    if role == "worker":
        mounts.append({"name": "hf-cache", "mountPath": common.HF_CACHE_MOUNT})
    return {"name": f"ray-{role}", "image": image,
            "imagePullPolicy": "Always" if preset.pull == "always" else "IfNotPresent",
            "env": sorted(env, key=lambda item: str(item["name"])),
            "resources": resources.as_k8s(common.section(preset).gpu_resource),
            # explicit, so KubeRay keeps them (its defaults shell out to wget, not in the image)
            "readinessProbe": _agent_probe(10), "livenessProbe": _agent_probe(120),
            "securityContext": pod.container_security(), "volumeMounts": mounts}


def _api_container(preset: Preset, name: str, image: str) -> dict[str, Any]:
    """The server's HTTP API beside Ray's head: joins the cluster and KubeRay's application."""
    container = pod.server_container(preset, name, image, API_RESOURCES, port=API_PORT)
    extra = {"FLUX_RAY_ADDRESS": "auto", "FLUX_SERVE_MANAGED": "1"}
    env = [e for e in container["env"] if e["name"] not in extra]
    env += [{"name": k, "value": v} for k, v in extra.items()] + _ray_env(name)
    container["env"] = sorted(env, key=lambda item: str(item["name"]))
    container["command"] = ["python", "-m", "flux_server"]
    container["volumeMounts"] = [m for m in container["volumeMounts"]
                                 if m["name"] != "hf-cache"]
    return container


def _pod_template(preset: Preset, name: str, containers: list[dict[str, Any]],
                  volumes: list[dict[str, Any]], extra_labels: dict[str, str]
                  ) -> dict[str, Any]:
    return {"metadata": {"labels": {**common.labels(preset, name), **extra_labels}},
            "spec": {"securityContext": pod.pod_security(preset),
                     "terminationGracePeriodSeconds": workload.GRACE_S,
                     "containers": containers, "volumes": volumes, **pod.placement(preset)}}


def rayservice(preset: Preset, name: str, image: str) -> dict[str, Any]:
    assert preset.scale is not None
    gpus = preset.lambda_.gpu_count() if preset.lambda_ else (preset.scale.replicas_per_node
                                                              or 1)
    low, high, _ = preset.scale.bounds(gpus)
    head_volumes = [v for v in pod.volumes(preset, name, {"emptyDir": {}})
                    if v["name"] != "hf-cache"]
    head = _pod_template(preset, name, [
        _ray_container(preset, name, image, "head", HEAD_RESOURCES),
        _api_container(preset, name, image)], head_volumes, ENDPOINT_LABEL)
    cache = {"emptyDir": {"sizeLimit": common.section(preset).cache_size}}
    worker = _pod_template(preset, name, [
        _ray_container(preset, name, image, "worker", pod_resources(preset, replica=True))],
        [v for v in pod.volumes(preset, name, cache) if v["name"] != "api-keys"], {})
    meta = common.metadata(preset, name, common.object_name(name))
    return {"apiVersion": "ray.io/v1", "kind": "RayService", "metadata": meta, "spec": {
        "serveConfigV2": serve_config(preset),
        "rayClusterConfig": {
            "rayVersion": RAY_VERSION, "enableInTreeAutoscaling": low < high,
            "authOptions": {"mode": "token", "secretName": ray_token_secret(name)},
            "headGroupSpec": {"rayStartParams": {"num-gpus": "0"}, "template": head},
            "workerGroupSpecs": [{
                "groupName": "gpu", "replicas": low, "minReplicas": low, "maxReplicas": high,
                "rayStartParams": {"num-gpus": "1"}, "template": worker}]}}}
