"""Presets: every shipped one loads; broken ones give errors naming file, field, value, fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from intelligensi_deploy.preset_paths import PresetError, preset_files, resolve_preset_path
from intelligensi_deploy.presets import load_preset, parse_preset

SHIPPED = ["lambda-a10", "lambda-a100", "lambda-h100", "lambda-2x-a100", "local", "ssh"]

MINIMAL = """
provider: lambda
lambda: {instance_type: gpu_1x_a10, ssh_key_name: me}
image: ghcr.io/x/flux:1
server: {memory: model-offload, quant: nf4}
"""


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_preset_loads(name: str) -> None:
    preset = load_preset(name)
    assert preset.name == name
    assert preset.server.device_map is None, "no shipped preset may use device_map"


def test_a10_preset_fits_in_24_gb() -> None:
    preset = load_preset("lambda-a10")
    assert preset.server.quant in ("nf4", "int8")
    assert preset.server.memory == "model-offload"


def test_multi_gpu_preset_uses_balanced() -> None:
    preset = load_preset("lambda-2x-a100")
    assert preset.lambda_ is not None and preset.lambda_.gpu_count() == 2
    assert preset.server.memory == "balanced"


def test_local_preset_needs_no_cloud() -> None:
    preset = load_preset("local")
    assert preset.provider == "local" and preset.lambda_ is None
    assert preset.server.model == "tiny" and preset.gpus is False


def _error(text: str, source: str = "/tmp/my.yaml") -> str:
    with pytest.raises(PresetError) as info:
        parse_preset(text, source=source)
    return str(info.value)


def test_unknown_key_is_an_error_with_a_suggestion() -> None:
    message = _error(MINIMAL + "exposur: public\n")
    assert "/tmp/my.yaml" in message
    assert "exposur" in message and "did you mean 'exposure'" in message


def test_unknown_nested_key_lists_allowed_fields() -> None:
    message = _error(MINIMAL.replace("quant: nf4", "quant: nf4, memroy: gpu"))
    assert "server.memroy" in message and "memory" in message


def test_bad_enum_value_names_field_value_and_allowed() -> None:
    message = _error(MINIMAL + "exposure: everywhere\n")
    assert "exposure" in message and "'everywhere'" in message
    assert "tunnel" in message and "public" in message


def test_bf16_on_gpu_is_refused_on_an_a10() -> None:
    message = _error(MINIMAL.replace("{memory: model-offload, quant: nf4}",
                                     "{memory: gpu, quant: none}"))
    assert "24 GB" in message and "nf4" in message


def test_fp8_is_refused_below_compute_capability_8_9() -> None:
    message = _error(MINIMAL.replace("quant: nf4", "quant: fp8"))
    assert "8.9" in message


def test_tokens_in_preset_env_are_refused() -> None:
    message = _error(MINIMAL + "env: {HF_TOKEN: hf_abc}\n")
    assert "HF_TOKEN" in message and "hf_abc" not in message.split("got")[0]


def test_lambda_provider_without_section() -> None:
    message = _error("provider: lambda\nimage: x\n")
    assert "lambda" in message and "instance_type" in message


def test_bad_cidr() -> None:
    message = _error(MINIMAL + "public_cidr: 10.0.0/99\n")
    assert "public_cidr" in message and "CIDR" in message


def test_yaml_syntax_error_names_line() -> None:
    message = _error("provider: lambda\n  image: [x\n")
    assert "line" in message and "/tmp/my.yaml" in message


def test_not_a_mapping() -> None:
    assert "mapping" in _error("- a\n- b\n")


def test_unknown_preset_name_suggests_close_ones() -> None:
    with pytest.raises(PresetError) as info:
        resolve_preset_path("lambda-a1O")
    assert "lambda-a10" in str(info.value)


def test_user_presets_shadow_shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "presets"
    folder.mkdir()
    (folder / "local.yaml").write_text("provider: local\nimage: mine:1\ngpus: false\n")
    (folder / "mine.yaml").write_text("provider: local\nimage: mine:2\ngpus: false\n")
    monkeypatch.setenv("FLUXDEPLOY_CONFIG", str(tmp_path))
    files = preset_files()
    assert files["local"] == folder / "local.yaml"
    assert load_preset("mine").image == "mine:2"
    assert load_preset(str(folder / "mine.yaml")).name == "mine"


def test_missing_path() -> None:
    with pytest.raises(PresetError, match="No preset file"):
        resolve_preset_path("/nonexistent/x.yaml")


def test_container_env_carries_no_secret() -> None:
    env = load_preset("lambda-a100").server.container_env()
    assert env["FLUX_MODEL"] == "black-forest-labs/FLUX.1-dev"
    assert not any("TOKEN" in k for k in env)
