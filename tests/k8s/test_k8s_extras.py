"""The optional objects: an Ingress with TLS (only with the API keys on), a
PodDisruptionBudget over the endpoint's pod, the HPA as a commented example."""

from __future__ import annotations

from pathlib import Path

import pytest

from intelligensi_deploy.k8s import extras
from intelligensi_deploy.k8s.common import K8sRenderError
from intelligensi_deploy.k8s.render import render
from intelligensi_deploy.k8s.render_types import dump
from tests.k8s.helpers import K8S_VERSIONS, TEAM, by_kind, preset_from, validate_core

ROOT = Path(__file__).parents[2]
SECTION = """kubernetes:
  ingress: {host: flux.example.com, tls_secret: flux-tls, class_name: nginx}
  disruption_budget: true
"""
SCALED = TEAM.replace("provider: ssh\nssh: {host: 10.0.0.5}", """provider: lambda
lambda: {instance_type: gpu_1x_a100, ssh_key_name: k}""").replace(
    "server: {", "build: {extras: [scale]}\nserver: {") + "scale: {nodes: 3}\n"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_ingress_and_budget_are_valid_and_point_at_the_server(tmp_path: Path,
                                                              version: str) -> None:
    objs = by_kind(render(*preset_from(TEAM + "exposure: public\n" + SECTION, tmp_path)))
    ingress, budget = objs["Ingress"], objs["PodDisruptionBudget"]
    for obj in (ingress, budget):
        validate_core(obj, version)
    assert ingress["spec"]["tls"] == [{"hosts": ["flux.example.com"], "secretName": "flux-tls"}]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    service = objs["Service"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    pod_labels = objs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    env = {e["name"] for e in objs["Deployment"]["spec"]["template"]["spec"]["containers"][0][
        "env"]}
    assert "FLUX_API_KEYS_FILE" in env  # the same keys file as a public VM


def test_ingress_without_auth_is_refused(tmp_path: Path) -> None:
    preset, source = preset_from(TEAM + SECTION, tmp_path)
    with pytest.raises(K8sRenderError) as caught:
        render(preset, source)
    text = str(caught.value)
    assert source in text and "kubernetes.ingress" in text and "exposure: tunnel" in text
    assert "allowed: an Ingress with auth on" in text and "exposure: public" in text


def test_budget_of_a_rayservice_covers_the_endpoint_pod_only(tmp_path: Path) -> None:
    objs = by_kind(render(*preset_from(SCALED + "exposure: public\n" + SECTION, tmp_path)))
    selector = objs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items()
    cluster = objs["RayService"]["spec"]["rayClusterConfig"]
    assert selector <= cluster["headGroupSpec"]["template"]["metadata"]["labels"].items()
    worker = cluster["workerGroupSpecs"][0]["template"]["metadata"]["labels"]
    assert not selector <= worker.items()


def test_nothing_optional_by_default(tmp_path: Path) -> None:
    kinds = {m.kind for m in render(*preset_from(TEAM, tmp_path))}
    assert not kinds & {"Ingress", "PodDisruptionBudget", "HorizontalPodAutoscaler"}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_hpa_example_is_commented_valid_and_on_the_servers_metric(tmp_path: Path,
                                                                  version: str) -> None:
    preset, _ = preset_from(TEAM, tmp_path)
    text = extras.autoscaler_example(preset, "team")
    assert all(line.startswith("#") for line in text.splitlines())
    assert "metrics adapter" in text and "ReadWriteOnce" in text
    hpa = extras.autoscaler(preset, "team")
    commented = [f"# {line}" for line in dump(hpa).splitlines()]
    assert text.splitlines()[-len(commented):] == commented  # uncommenting gives this object
    validate_core(hpa, version)
    metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
    server_metrics = (ROOT / "server" / "flux_server" / "metrics.py").read_text()
    assert f'Gauge("{metric}"' in server_metrics
