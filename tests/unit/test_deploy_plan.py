"""The pure decisions of `up`: what to do with the container it finds."""

from __future__ import annotations

from pathlib import Path

import pytest

from intelligensi_deploy.container_plan import (
    ContainerAction,
    ContainerFacts,
    container_spec,
    hf_cache_path,
    needs_registry_login,
    plan_container,
)
from intelligensi_deploy.health import ReadyStatus
from intelligensi_deploy.names import CONFIG_LABEL
from intelligensi_deploy.presets import PresetError, load_preset, parse_preset
from intelligensi_deploy.secrets import Token

READY = ReadyStatus.parse(200, {"state": "ready"})
LOADING = ReadyStatus.parse(503, {"state": "downloading"})
FAILED = ReadyStatus.parse(503, {"state": "failed", "error": {"type": "X"}})
RUNNING = ContainerFacts(running=True, restarting=False, config_hash="h1")


@pytest.mark.parametrize(
    ("existing", "ready", "force", "expected"),
    [
        (None, None, False, ContainerAction.CREATE),
        (RUNNING, READY, False, ContainerAction.KEEP),
        (RUNNING, LOADING, False, ContainerAction.WAIT),
        (RUNNING, LOADING, True, ContainerAction.REPLACE),
        (RUNNING, FAILED, False, ContainerAction.REPLACE),
        (ContainerFacts(running=False, restarting=False, config_hash="h1", exit_code=1),
         None, False, ContainerAction.REPLACE),
        (ContainerFacts(running=True, restarting=False, config_hash="old"), READY, False,
         ContainerAction.REPLACE),
        (ContainerFacts(running=True, restarting=False, config_hash="old"), LOADING, False,
         ContainerAction.REFUSE),
    ],
)
def test_plan_container(existing, ready, force, expected) -> None:
    assert plan_container(existing, "h1", ready, force) is expected


def test_facts_from_inspect() -> None:
    facts = ContainerFacts.from_inspect({"State": {"Running": False, "ExitCode": 137},
                                         "Config": {"Labels": {CONFIG_LABEL: "abc"}}})
    assert facts == ContainerFacts(running=False, restarting=False, config_hash="abc",
                                   exit_code=137)


def test_spec_tunnel_publishes_on_loopback_and_carries_no_secret() -> None:
    preset = load_preset("lambda-a100")
    spec = container_spec(preset, "prod", "/home/ubuntu/.fluxdeploy/prod.env", None)
    assert spec.publish_ip == "127.0.0.1" and spec.gpus
    assert spec.env_file == "/home/ubuntu/.fluxdeploy/prod.env"
    assert "HF_TOKEN" not in spec.env
    assert spec.labels["fluxdeploy.deployment"] == "prod"


@pytest.mark.parametrize("name", ["lambda-a10", "lambda-a100", "lambda-2x-a100", "lambda-h100",
                                  "ssh"])
def test_gpu_presets_tell_the_server_a_gpu_is_required(name: str) -> None:
    spec = container_spec(load_preset(name), "d", None, None)
    assert spec.gpus and spec.env["FLUX_REQUIRE_GPU"] == "1"


def test_cpu_preset_lets_the_server_run_on_the_cpu() -> None:
    spec = container_spec(load_preset("local"), "d", None, None)
    assert not spec.gpus and "FLUX_REQUIRE_GPU" not in spec.env


def test_preset_env_can_lift_the_gpu_requirement() -> None:
    preset = parse_preset("provider: ssh\nimage: x\nenv: {FLUX_REQUIRE_GPU: '0'}\n",
                          source="p.yaml")
    assert container_spec(preset, "d", None, None).env["FLUX_REQUIRE_GPU"] == "0"


def test_config_hash_changes_with_the_model_only_when_it_should() -> None:
    base = load_preset("local")
    other = base.model_copy(update={"server": base.server.model_copy(update={"model": "x/y"})})
    h = lambda p: container_spec(p, "d", "/e", None).labels[CONFIG_LABEL]
    assert h(base) == h(base)
    assert h(base) != h(other)


def test_public_exposure_publishes_on_all_interfaces() -> None:
    preset = parse_preset("provider: ssh\nimage: x\nexposure: public\n", source="p.yaml")
    assert container_spec(preset, "d", None, None).publish_ip == "0.0.0.0"


def test_hf_cache_on_the_lambda_file_system() -> None:
    preset = parse_preset(
        "provider: lambda\nlambda: {instance_type: gpu_1x_h100_pcie, ssh_key_name: k, "
        "file_system: flux-cache}\nimage: x\n", source="p.yaml")
    assert hf_cache_path(preset, "web") == "/lambda/nfs/flux-cache/huggingface"


@pytest.mark.parametrize(("value", "expected"), [
    ("auto", "/lambda/nfs/fluxdeploy-web/huggingface"), ("none", None), (None, None)])
def test_file_system_auto_is_the_deployments_own(value: str | None, expected: str | None
                                                 ) -> None:
    fs = "null" if value is None else value
    preset = parse_preset(
        "provider: lambda\nlambda: {instance_type: gpu_1x_a10, ssh_key_name: k, "
        f"file_system: {fs}}}\nimage: x\n", source="p.yaml")
    assert hf_cache_path(preset, "web") == expected


@pytest.mark.parametrize("bad", ["1cache", "flux_cache", "a" * 61, "my cache"])
def test_a_file_system_name_lambda_would_refuse_is_refused_here(bad: str) -> None:
    with pytest.raises(PresetError) as caught:
        parse_preset("provider: lambda\nlambda: {instance_type: gpu_1x_a10, ssh_key_name: k, "
                     f"file_system: '{bad}'}}\nimage: x\n", source="p.yaml")
    assert "file_system" in str(caught.value) and "auto" in str(caught.value)


def test_registry_login_only_when_needed() -> None:
    token = Token("GHCR_TOKEN", "ghp_x")
    assert needs_registry_login("ghcr.io/a/b:1", token)
    assert needs_registry_login("localhost:5000/a/b:1", token)
    assert not needs_registry_login("ghcr.io/a/b:1", None)
    assert not needs_registry_login("python:3.11", token)


@pytest.mark.parametrize("provider", ["ssh", "local"])
def test_file_system_auto_outside_lambda_is_refused_with_the_reason(provider: str) -> None:
    with pytest.raises(PresetError) as caught:
        parse_preset(f"provider: {provider}\nimage: x\nlambda: {{instance_type: gpu_1x_a10, "
                     "ssh_key_name: k, file_system: auto}\n", source="p.yaml")
    assert f"provider '{provider}' takes no 'lambda:' section" in str(caught.value)


def test_file_system_on_a_multi_vm_cluster_is_refused() -> None:
    text = (Path(__file__).resolve().parents[2] / "presets" / "lambda-3x-a100.yaml").read_text()
    with pytest.raises(PresetError, match="not supported yet"):
        parse_preset(text.replace("file_system: none", "file_system: auto"), source="c.yaml")
