"""What `fluxdeploy k8s render` puts in the objects, and what it refuses (file, field,
value, allowed)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from intelligensi_deploy import names
from intelligensi_deploy.k8s.common import K8sRenderError
from intelligensi_deploy.k8s.render import render
from intelligensi_deploy.preset_paths import PresetError
from tests.k8s.helpers import (
    IMAGE,
    RENDERABLE,
    TEAM,
    by_kind,
    preset_from,
    render_shipped,
    shipped,
)


def _container(objs: dict) -> dict:
    """The server's container: the Deployment's, or the one beside a RayService's Ray head."""
    if "RayService" in objs:
        head = objs["RayService"]["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]
        return next(c for c in head["spec"]["containers"] if c["name"] == "server")
    return objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]


def _env(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("preset", RENDERABLE)
def test_startup_probe_covers_ready_timeout_and_probes_hit_the_contract(preset: str) -> None:
    loaded, _ = shipped(preset)
    container = _container(by_kind(render_shipped(preset)))
    startup = container["startupProbe"]
    budget = startup["failureThreshold"] * startup["periodSeconds"]
    assert loaded.ready_timeout <= budget < loaded.ready_timeout + startup["periodSeconds"]
    assert startup["httpGet"]["path"] == "/ready"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    port = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port[startup["httpGet"]["port"]] == int(_env(container)["PORT"])


def test_pod_runs_as_the_images_user_without_privilege_on_a_read_only_root(
        tmp_path: Path) -> None:
    objs = by_kind(render_shipped("lambda-a100"))
    pod = objs["Deployment"]["spec"]["template"]["spec"]
    dockerfile = (Path(__file__).parents[2] / "server" / "Dockerfile").read_text()
    uid = int(dockerfile.split("ARG APP_UID=")[1].split()[0])
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"]["runAsNonRoot"] is True
    security = pod["containers"][0]["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    # with a read-only root, every path the server writes is a volume
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    env = _env(pod["containers"][0])
    assert {env["HF_HOME"], env["HOME"]} <= mounts


def test_deployment_holds_the_gpu_and_the_cache_claim_it_names() -> None:
    objs = by_kind(render_shipped("lambda-a100"))
    spec = objs["Deployment"]["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    resources = _container(objs)["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "1"
    assert resources["requests"]["memory"] == resources["limits"]["memory"]
    claim = spec["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert claim == objs["PersistentVolumeClaim"]["metadata"]["name"]
    assert objs["Service"]["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"][
        "labels"].items()


def test_resources_follow_the_memory_plan() -> None:
    two = by_kind(render_shipped("lambda-2x-a100"))  # memory: balanced over both GPUs
    assert _container(two)["resources"]["limits"]["nvidia.com/gpu"] == "2"
    bf16 = _container(by_kind(render_shipped("lambda-h100")))["resources"]["limits"]
    loaded, _ = shipped("lambda-h100")
    fp32 = loaded.model_copy(update={"server": loaded.server.model_copy(
        update={"dtype": "fp32"})})
    limits = _container(by_kind(render(fp32, "x.yaml", image=IMAGE)))["resources"]["limits"]
    assert int(limits["memory"].removesuffix("Gi")) > int(bf16["memory"].removesuffix("Gi"))


def test_server_env_is_the_presets_and_the_token_only_a_reference(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_SENTINELsentinelSENTINEL123")
    manifests = render_shipped("lambda-a100")
    assert all("SENTINEL" not in m.text("") for m in manifests)
    env = _env(_container(by_kind(manifests)))
    loaded, _ = shipped("lambda-a100")
    assert {k: env[k] for k in loaded.server.container_env()} == loaded.server.container_env()
    ref = env["HF_TOKEN"]["secretKeyRef"]
    assert ref["optional"] is False  # FLUX.1-dev is gated: wait for the Secret
    schnell = _env(_container(by_kind(render_shipped("lambda-a10"))))
    assert schnell["HF_TOKEN"]["secretKeyRef"]["optional"] is True


def test_public_preset_reads_its_api_keys_file_from_a_secret(tmp_path: Path) -> None:
    preset, source = preset_from(TEAM + "exposure: public\n", tmp_path)
    objs = by_kind(render(preset, source))
    pod = objs["Deployment"]["spec"]["template"]["spec"]
    env = _env(pod["containers"][0])
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "api-keys")
    volume = next(v for v in pod["volumes"] if v["name"] == "api-keys")["secret"]
    (item,) = volume["items"]
    assert env["FLUX_API_KEYS_FILE"] == f"{mount['mountPath']}/{item['path']}"
    assert mount["readOnly"] is True
    assert volume["secretName"] == f"{names.PREFIX}-team-api-keys"
    assert "FLUX_TLS_CERT_FILE" not in env  # TLS ends at the Ingress / load balancer
    tunnel = by_kind(render(*preset_from(TEAM, tmp_path)))
    assert "FLUX_API_KEYS_FILE" not in _env(_container(tunnel))


def test_kubernetes_section_places_the_pod(tmp_path: Path) -> None:
    preset, source = preset_from(TEAM + """
kubernetes:
  namespace: gpu-team
  storage_class: fast-ssd
  cache_size: 200Gi
  gpu_resource: amd.com/gpu
  node_selector: {cloud.google.com/gke-accelerator: nvidia-h100-80gb}
  tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
""", tmp_path)
    objs = by_kind(render(preset, source))
    assert {o["metadata"]["namespace"] for o in objs.values()} == {"gpu-team"}
    assert objs["PersistentVolumeClaim"]["spec"]["storageClassName"] == "fast-ssd"
    assert objs["PersistentVolumeClaim"]["spec"]["resources"]["requests"]["storage"] == "200Gi"
    pod = objs["Deployment"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["amd.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                   "effect": "NoSchedule"}]
    startup = pod["containers"][0]["startupProbe"]
    assert startup["failureThreshold"] == math.ceil(905 / startup["periodSeconds"])


def test_image_flag_beats_the_section_which_beats_the_preset(tmp_path: Path) -> None:
    plain, source = preset_from(TEAM, tmp_path)
    assert _container(by_kind(render(plain, source)))["image"] == "ghcr.io/acme/flux-server:2.0"
    section, source = preset_from(TEAM + "kubernetes: {image: 'reg.example/flux:3'}\n",
                                  tmp_path)
    assert _container(by_kind(render(section, source)))["image"] == "reg.example/flux:3"
    flagged = render(section, source, image="reg.example/flux:4")
    assert _container(by_kind(flagged))["image"] == "reg.example/flux:4"


def test_bundled_image_is_refused_with_the_publish_command() -> None:
    preset, source = shipped("lambda-a100")
    with pytest.raises(K8sRenderError) as caught:
        render(preset, source)
    text = str(caught.value)
    assert source in text and "image: 'bundled'" in text and "allowed: a registry image" in text
    assert "fluxdeploy image build --preset lambda-a100 --push" in text
    assert caught.value.exit_code == 2


def test_bundled_in_the_kubernetes_section_names_that_field(tmp_path: Path) -> None:
    preset, source = preset_from(TEAM + "kubernetes: {image: bundled}\n", tmp_path)
    with pytest.raises(K8sRenderError, match=r"kubernetes\.image: 'bundled'"):
        render(preset, source)


@pytest.mark.parametrize(("section", "field", "allowed"), [
    ("{gpu_resource: ''}", "kubernetes.gpu_resource", "nvidia.com/gpu"),
    ("{gpu_resource: null}", "kubernetes.gpu_resource", "nvidia.com/gpu"),
    ("{gpu_resource: gpu}", "kubernetes.gpu_resource", "DOMAIN/NAME"),
    ("{namespace: GPU_Team}", "kubernetes.namespace", "DNS label"),
    ("{cache_size: 100GB}", "kubernetes.cache_size", "Mi, Gi or Ti"),
    ("{storageclass: fast}", "kubernetes.storageclass", "storage_class"),
])
def test_bad_kubernetes_section_is_refused_in_the_usual_form(
        tmp_path: Path, section: str, field: str, allowed: str) -> None:
    with pytest.raises(PresetError) as caught:
        preset_from(TEAM + f"kubernetes: {section}\n", tmp_path)
    text = str(caught.value)
    assert "team.yaml" in text and field in text and allowed in text


def test_scale_with_more_replicas_per_node_than_gpus_is_refused(tmp_path: Path) -> None:
    preset = TEAM.replace("provider: ssh\nssh: {host: 10.0.0.5}", """provider: lambda
lambda: {instance_type: gpu_2x_a100, ssh_key_name: k}""") + """
scale: {replicas_per_node: 4}
"""
    with pytest.raises(PresetError) as caught:
        preset_from(preset, tmp_path)
    text = str(caught.value)
    assert "team.yaml" in text and "scale" in text and "(got" in text and "at most 2" in text


def test_bad_name_is_refused() -> None:
    preset, source = shipped("lambda-a100")
    with pytest.raises(K8sRenderError, match="--name: 'Flux_Dev'"):
        render(preset, source, name="Flux_Dev", image=IMAGE)
