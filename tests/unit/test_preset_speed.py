"""The `server.speed:` preset section: validation, container variables, and the shipped GPU
presets switching on exactly what the server's speed planner picks for their GPU."""

from __future__ import annotations

import pytest
from flux_server import memory, speed
from flux_server.defaults import model_defaults

from intelligensi_deploy.preset_paths import PresetError
from intelligensi_deploy.presets import load_preset, parse_preset

GPU_PRESETS = ("lambda-h100", "lambda-a100", "lambda-2x-a100", "lambda-a10")

BASE = """
provider: lambda
lambda: {instance_type: INSTANCE, ssh_key_name: k}
image: ghcr.io/x/y:1
server:
  model: black-forest-labs/FLUX.1-dev
  memory: gpu
  speed:
SPEED
"""


def preset(speed_yaml: str, instance: str = "gpu_1x_h100_pcie"):
    text = BASE.replace("INSTANCE", instance).replace("SPEED", speed_yaml)
    return parse_preset(text, source="p.yaml")


def planner_choice(name: str) -> speed.SpeedPlan:
    """What the server would pick with every option on `auto`, on the preset's GPU."""
    p = load_preset(name)
    gb, capability = p.lambda_.gpu_facts()
    major, minor = (int(part) for part in f"{capability:.1f}".split("."))
    gpus = [memory.GpuInfo(p.lambda_.instance_type, gb * 10**9 + 10**9, (major, minor))
            ] * p.lambda_.gpu_count()
    mem = memory.plan(gpus, p.server.memory, p.server.quant, p.server.dtype)
    defaults = model_defaults(p.server.model, False)
    return speed.plan_speed(speed.SpeedRequest(), gpus, mem, defaults.kind, defaults.size)


@pytest.mark.parametrize("name", GPU_PRESETS)
def test_shipped_gpu_presets_switch_on_what_the_planner_picks(name: str) -> None:
    chosen = load_preset(name).server.speed
    auto = planner_choice(name)
    assert chosen.compile == auto.compile
    assert (chosen.fp8 == "on") == auto.fp8
    assert (chosen.fuse_qkv == "on") == auto.fuse_qkv
    assert chosen.step_cache == auto.cache
    if chosen.warm_sizes is not None:
        assert tuple(speed.parse_sizes(",".join(chosen.warm_sizes))) == auto.warm_sizes


def test_the_h100_preset_runs_every_option() -> None:
    env = load_preset("lambda-h100").server.container_env()
    assert env["FLUX_COMPILE"] == "regional" and env["FLUX_FP8"] == "on"
    assert env["FLUX_FUSE_QKV"] == "on" and env["FLUX_STEP_CACHE"] == "first-block"
    assert env["FLUX_WARM_SIZES"] == "1024x1024,1024x576,576x1024"


def test_auto_options_pass_no_variables() -> None:
    env = load_preset("local").server.container_env()
    assert not {k for k in env if k in ("FLUX_COMPILE", "FLUX_FP8", "FLUX_FUSE_QKV",
                                        "FLUX_STEP_CACHE", "FLUX_WARM_SIZES")}


def test_yaml_on_and_off_words_are_read_as_words() -> None:
    p = preset("    fp8: on\n    fuse_qkv: off\n    compile: off\n    cache_threshold: 0.1")
    assert p.server.speed.fp8 == "on" and p.server.speed.fuse_qkv == "off"
    assert p.server.container_env()["FLUX_CACHE_THRESHOLD"] == "0.1"


def test_fp8_forced_on_an_a100_is_refused_naming_the_fix() -> None:
    with pytest.raises(PresetError) as err:
        preset("    fp8: on", instance="gpu_1x_a100_sxm4")
    assert "compute capability >= 8.9" in str(err.value)
    assert "fp8 auto or off" in str(err.value)


@pytest.mark.parametrize("speed_yaml,named", [
    ("    warm_sizes: [1024x1000]", "warm size"),
    ("    step_cache: magcache", "server.speed.step_cache"),
    ("    compile: fast", "server.speed.compile"),
    ("    cache_threshold: 3", "server.speed.cache_threshold"),
    ("    complie: regional", "did you mean 'compile'"),
])
def test_bad_speed_values_name_the_field(speed_yaml: str, named: str) -> None:
    with pytest.raises(PresetError, match=named):
        preset(speed_yaml)
