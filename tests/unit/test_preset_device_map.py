"""`server.device_map: auto` (or FLUX_DEVICE_MAP=auto in `env`) is refused when the preset
loads, before a VM downloads about 30 GB for diffusers to raise NotImplementedError."""

from __future__ import annotations

from pathlib import Path

import pytest

from intelligensi_deploy.preset_paths import PresetError
from intelligensi_deploy.presets import load_preset

BASE = "name: dm\nprovider: lambda\nlambda: {instance_type: gpu_1x_a100, ssh_key_name: k}\n"


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "dm.yaml"
    path.write_text(BASE + extra)
    return path


def refusal(path: Path) -> str:
    with pytest.raises(PresetError) as caught:
        load_preset(str(path))
    assert caught.value.exit_code == 2
    return str(caught.value)


def test_server_device_map_auto_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {device_map: auto}\n")
    message = refusal(path)
    assert str(path) in message                                   # the file
    assert "server.device_map" in message and "(got 'auto')" in message  # field, value
    assert "Allowed: balanced, cuda, cpu" in message              # what is allowed
    assert "diffusers supports only `balanced` for a whole pipeline" in message  # why


def test_flux_device_map_auto_in_env_is_refused(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, "env: {FLUX_DEVICE_MAP: auto}\n"))
    assert "env: FLUX_DEVICE_MAP: 'auto' is not a pipeline device map" in message
    assert "Allowed: balanced" in message


@pytest.mark.parametrize("value", ["sequential", "Auto", "cuda:0"])
def test_other_values_diffusers_refuses(tmp_path: Path, value: str) -> None:
    assert f"(got '{value}')" in refusal(write(tmp_path, f"server: {{device_map: '{value}'}}\n"))


def test_balanced_passes_and_reaches_the_container(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text("name: b\nprovider: lambda\nlambda: {instance_type: gpu_2x_a100, "
                    "ssh_key_name: k}\nserver: {device_map: balanced, memory: balanced}\n")
    preset = load_preset(str(path))
    assert preset.server.container_env()["FLUX_DEVICE_MAP"] == "balanced"
