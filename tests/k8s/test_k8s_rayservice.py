"""A preset with `scale:` renders a KubeRay RayService: valid against KubeRay's own CRD
(v1.7.0, tests/fixtures/kuberay/), its pod templates valid Kubernetes, and its serveConfigV2
the server's own application (flux_server.serve_app) with the preset's replicas."""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import tomllib
import yaml

from intelligensi_deploy.k8s import rayservice
from intelligensi_deploy.k8s.render import render
from tests.k8s.helpers import K8S_VERSIONS, TEAM, by_kind, preset_from, render_shipped, shipped
from tests.k8s.helpers import validate_core as validate_core_object

ROOT = Path(__file__).parents[2]
CRD = ROOT / "tests" / "fixtures" / "kuberay" / "ray.io_rayservices-v1.7.0.yaml"
SCALED = ["lambda-3x-a100", "lambda-8x-a100"]


def _closed(node: Any) -> Any:
    """The schema with unknown fields refused where the API server would prune them (an
    object with properties and no x-kubernetes-preserve-unknown-fields)."""
    if isinstance(node, dict):
        out = {k: _closed(v) for k, v in node.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_closed(v) for v in node]
    return node


@functools.cache
def _validator() -> jsonschema.Draft7Validator:
    crd = yaml.safe_load(CRD.read_text())
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return jsonschema.Draft7Validator(_closed(v1["schema"]["openAPIV3Schema"]))


def _rayservice(preset: str) -> dict[str, Any]:
    return by_kind(render_shipped(preset))["RayService"]


def _templates(obj: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = obj["spec"]["rayClusterConfig"]
    return [cluster["headGroupSpec"]["template"],
            *(g["template"] for g in cluster["workerGroupSpecs"])]


@pytest.mark.parametrize("preset", SCALED)
def test_rayservice_is_valid_against_kuberays_crd(preset: str) -> None:
    obj = _rayservice(preset)
    assert obj["apiVersion"] == "ray.io/v1"
    _validator().validate(obj)


def test_crd_check_refuses_an_unknown_field_and_a_wrong_type() -> None:
    obj = _rayservice("lambda-3x-a100")
    unknown = copy.deepcopy(obj)
    unknown["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplica"] = 3
    with pytest.raises(jsonschema.ValidationError):
        _validator().validate(unknown)
    wrong = copy.deepcopy(obj)
    wrong["spec"]["rayClusterConfig"]["authOptions"]["mode"] = "password"
    with pytest.raises(jsonschema.ValidationError):
        _validator().validate(wrong)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("preset", SCALED)
def test_pod_templates_are_valid_kubernetes_strict(preset: str, version: str) -> None:
    for template in _templates(_rayservice(preset)):
        validate_core_object({"apiVersion": "v1", "kind": "PodTemplate",
                              "metadata": {"name": "t"}, "template": template}, version)


@pytest.mark.parametrize("preset", SCALED)
def test_workers_are_one_gpu_replicas_between_the_presets_bounds(preset: str) -> None:
    loaded, _ = shipped(preset)
    assert loaded.lambda_ is not None and loaded.scale is not None
    low, high, _ = loaded.scale.bounds(loaded.lambda_.gpu_count())
    cluster = _rayservice(preset)["spec"]["rayClusterConfig"]
    (group,) = cluster["workerGroupSpecs"]
    assert (group["minReplicas"], group["maxReplicas"], group["replicas"]) == (low, high, low)
    assert cluster["enableInTreeAutoscaling"] is (low < high)
    (worker,) = group["template"]["spec"]["containers"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert group["rayStartParams"]["num-gpus"] == "1"
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"]
    assert all("nvidia.com/gpu" not in c["resources"]["limits"] for c in head)
    assert cluster["headGroupSpec"]["rayStartParams"]["num-gpus"] == "0"


@pytest.mark.parametrize("preset", SCALED)
def test_serve_config_is_the_servers_application_with_the_presets_scale(preset: str) -> None:
    pytest.importorskip("ray", reason="needs the server's `scale` extra (ray[serve])")
    from flux_server import serve_app
    from flux_server.config import settings_from_env
    from flux_server.scale_config import scale_from_env
    from ray.serve.schema import ServeDeploySchema

    loaded, _ = shipped(preset)
    obj = _rayservice(preset)
    config = yaml.safe_load(obj["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(config)  # what KubeRay sends to Serve's REST API
    (app,) = config["applications"]
    assert app["route_prefix"] is None  # the API is the server beside the head, not Serve's
    module, _, builder = app["import_path"].partition(":")
    assert module == serve_app.__name__ and getattr(serve_app, builder) is serve_app.build
    assert app["name"] == serve_app.APP_NAME
    env = app["runtime_env"]["env_vars"]
    settings = settings_from_env(env)
    scale = scale_from_env(env, settings.queue_size)
    group = obj["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    assert (scale.min_replicas, scale.max_replicas) == (group["minReplicas"],
                                                        group["maxReplicas"])
    assert scale.deployment_options()["ray_actor_options"]["num_gpus"] == 1
    assert settings.model == loaded.server.model and settings.require_gpu


def test_api_beside_the_head_joins_kuberays_application_and_is_the_endpoint() -> None:
    objs = by_kind(render_shipped("lambda-3x-a100"))
    head = objs["RayService"]["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]
    ray_head, api = head["spec"]["containers"]
    assert ray_head["name"] == "ray-head"  # KubeRay's Ray container is the first
    env = {e["name"]: e.get("value") for e in api["env"]}
    assert env["FLUX_SERVE_MANAGED"] == "1" and env["FLUX_RAY_ADDRESS"] == "auto"
    assert api["command"] == ["python", "-m", "flux_server"]
    # Ray's session files (address, sockets) are shared through /tmp
    tmp = {m["mountPath"]: m["name"] for c in (ray_head, api) for m in c["volumeMounts"]}
    assert tmp["/tmp"] == "tmp" and env["HOME"] == "/tmp"
    service = objs["Service"]
    assert service["spec"]["selector"].items() <= head["metadata"]["labels"].items()
    worker = objs["RayService"]["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]
    assert not service["spec"]["selector"].items() <= worker["metadata"]["labels"].items()
    port = {p["name"]: p["containerPort"] for p in api["ports"]}[service["spec"]["ports"][0][
        "targetPort"]]
    assert str(port) == env["PORT"]
    assert port != 8000  # Ray Serve's proxy keeps 8000 in the head pod
    startup = api["startupProbe"]
    assert startup["httpGet"]["path"] == "/ready"


def test_ray_token_and_hf_token_are_only_secret_references(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_SENTINELsentinel0000")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "SENTINELraytoken0000")
    manifests = render_shipped("lambda-3x-a100")
    assert all("SENTINEL" not in m.text("") for m in manifests)
    obj = by_kind(manifests)["RayService"]
    cluster = obj["spec"]["rayClusterConfig"]
    assert cluster["authOptions"] == {"mode": "token",
                                      "secretName": "fluxdeploy-lambda-3x-a100-ray-token"}
    for template in _templates(obj):
        for container in template["spec"]["containers"]:
            env = {e["name"]: e for e in container["env"]}
            assert env["RAY_AUTH_MODE"]["value"] == "token"
            assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {
                "name": cluster["authOptions"]["secretName"], "key": rayservice.RAY_TOKEN_KEY}
            assert "value" not in env["HF_TOKEN"]
    serve_env = yaml.safe_load(obj["spec"]["serveConfigV2"])["applications"][0]["runtime_env"]
    assert not {"HF_TOKEN", "RAY_AUTH_TOKEN"} & set(serve_env["env_vars"])


def test_ray_version_is_the_servers_pin() -> None:
    server = tomllib.loads((ROOT / "server" / "pyproject.toml").read_text())
    (spec,) = server["project"]["optional-dependencies"]["scale"]
    assert re.fullmatch(r"ray\[serve\]==(.+)", spec).group(1) == rayservice.RAY_VERSION


def test_one_replica_in_all_is_the_plain_deployment(tmp_path: Path) -> None:
    preset, source = preset_from(TEAM + "scale: {replicas_per_node: 1, max_replicas: 1}\n",
                                 tmp_path)
    assert sorted(m.kind for m in render(preset, source)) == [
        "Deployment", "PersistentVolumeClaim", "Service"]
