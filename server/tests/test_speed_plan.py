"""The speed planner (flux_server/speed.py) and its settings: pure, by GPU and model kind."""

from __future__ import annotations

import pytest
from flux_server import memory
from flux_server.config import SettingsError, settings_from_env
from flux_server.memory import GpuInfo, PlanError
from flux_server.speed import DEFAULT_WARM_SIZES, SpeedRequest, parse_sizes, plan_speed

GB = 10**9
H100 = GpuInfo("NVIDIA H100 80GB HBM3", 85 * GB, (9, 0))
H200 = GpuInfo("NVIDIA H200", 150 * GB, (9, 0))
L40S = GpuInfo("NVIDIA L40S", 48 * GB, (8, 9))
A100 = GpuInfo("NVIDIA A100-SXM4-40GB", 42 * GB, (8, 0))
A10 = GpuInfo("NVIDIA A10", 24 * GB, (8, 6))
AO = frozenset({"torchao"})


AUTO = SpeedRequest()


def _plan(gpus, kind="dev", request=AUTO, quant="none", memory_mode="auto",
          backends=frozenset({"torchao", "bitsandbytes"})):
    mem = memory.plan(gpus, memory_mode, quant, backends=backends)
    return plan_speed(request, gpus, mem, kind, 1024, backends)


@pytest.mark.parametrize("gpu", [H100, H200, L40S])
def test_fp8_capable_gpus_get_every_option_for_dev(gpu):
    plan = _plan([gpu])
    assert (plan.compile, plan.fp8, plan.fuse_qkv, plan.cache) == (
        "regional", True, True, "first-block")
    assert plan.warm_sizes == DEFAULT_WARM_SIZES
    assert any("fp8 on" in r for r in plan.reasons)


def test_schnell_has_no_step_cache_by_default():
    plan = _plan([H100], kind="schnell")
    assert plan.cache == "off"
    assert any("few steps" in r for r in plan.reasons)


def test_a100_gets_no_fp8_and_says_why():
    plan = _plan([A100])
    assert not plan.fp8 and plan.compile == "regional" and plan.fuse_qkv
    assert any("8.9" in r for r in plan.reasons)


def test_a10_with_nf4_offload_gets_neither_compile_nor_fusion():
    plan = _plan([A10], kind="schnell")  # auto memory: NF4 + model offload on 24 GB
    assert (plan.compile, plan.fp8, plan.fuse_qkv, plan.cache) == ("off", False, False, "off")
    assert any("NF4" in r for r in plan.reasons)


def test_int8_quantized_transformer_compiles_but_is_not_fused_or_fp8():
    plan = _plan([A10], kind="schnell", backends=AO)  # int8 when bitsandbytes is absent
    assert plan.compile == "regional" and not plan.fuse_qkv and not plan.fp8


def test_sequential_offload_does_not_compile():
    plan = _plan([H100], memory_mode="sequential-offload")
    assert plan.compile == "off" and not plan.fp8


def test_cpu_switches_nothing_on_and_warms_the_tiny_default_size():
    plan = plan_speed(SpeedRequest(), [], memory.plan([]), "tiny", 64)
    assert (plan.compile, plan.fp8, plan.fuse_qkv, plan.cache) == ("off", False, False, "off")
    assert plan.warm_sizes == ((64, 64),)


def test_every_option_can_be_forced_on_the_cpu_for_tests():
    request = SpeedRequest("full", "on", "on", "first-block", 0.2, ((32, 32), (48, 32)))
    plan = plan_speed(request, [], memory.plan([]), "tiny", 64, AO)
    assert (plan.compile, plan.fp8, plan.fuse_qkv, plan.cache) == ("full", True, True,
                                                                   "first-block")
    assert plan.cache_threshold == 0.2 and plan.warm_sizes == ((32, 32), (48, 32))
    assert plan.describe() == ("compile=full fp8=on fuse_qkv=on cache=first-block@0.2 "
                               "warm_sizes=32x32,48x32")


def test_forced_off_wins_over_auto():
    request = SpeedRequest(compile="off", fp8="off", fuse_qkv="off", cache="off")
    plan = _plan([H100], request=request)
    assert (plan.compile, plan.fp8, plan.fuse_qkv, plan.cache) == ("off", False, False, "off")
    assert "FLUX_FP8=off as requested" in plan.reasons


@pytest.mark.parametrize("gpus", [[A100], [A10], [H100, A100]])
def test_fp8_forced_on_an_unsupported_gpu_is_refused_with_the_fix(gpus):
    with pytest.raises(PlanError) as err:
        _plan(gpus, request=SpeedRequest(fp8="on"), quant="none", memory_mode="gpu")
    assert "compute capability >= 8.9" in str(err.value)
    assert "FLUX_FP8=auto or off" in err.value.hint


def test_fp8_forced_without_torchao_or_over_quant_is_refused():
    with pytest.raises(PlanError, match="needs torchao"):
        plan_speed(SpeedRequest(fp8="on"), [H100], memory.plan([H100]), "dev", 1024,
                   frozenset())
    with pytest.raises(PlanError, match="FLUX_QUANT=int8"):
        _plan([H100], request=SpeedRequest(fp8="on"), quant="int8")


def test_fusion_forced_over_quantized_layers_is_refused():
    with pytest.raises(PlanError, match="cannot fuse nf4"):
        _plan([A10], request=SpeedRequest(fuse_qkv="on"), kind="schnell")


def test_as_dict_is_what_model_status_shows():
    data = _plan([H100]).as_dict()
    assert data["warm_sizes"] == ["1024x1024", "1024x576", "576x1024"]
    assert data["compile"] == "regional" and data["fp8"] is True
    assert len(data["reasons"]) == 5


def test_parse_sizes():
    assert parse_sizes("1024x1024, 1024X576,1024x1024") == ((1024, 1024), (1024, 576))
    assert parse_sizes("") == ()
    for bad in ("1024", "axb", "1000x1000", "4096x4096", "0x16", "32x32"):
        with pytest.raises(ValueError):
            parse_sizes(bad)


def test_settings_read_each_option_from_the_environment():
    settings = settings_from_env({
        "FLUX_COMPILE": "regional", "FLUX_FP8": "off", "FLUX_FUSE_QKV": "on",
        "FLUX_STEP_CACHE": "taylorseer", "FLUX_CACHE_THRESHOLD": "0.1",
        "FLUX_WARM_SIZES": "512x512,256x144"})
    assert settings.speed == SpeedRequest("regional", "off", "on", "taylorseer", 0.1,
                                          ((512, 512), (256, 144)))
    assert settings.public()["speed"]["warm_sizes"] == ["512x512", "256x144"]
    assert settings_from_env({}).speed == SpeedRequest()


@pytest.mark.parametrize("env,named", [
    ({"FLUX_COMPILE": "max"}, "FLUX_COMPILE"),
    ({"FLUX_FP8": "yes"}, "FLUX_FP8"),
    ({"FLUX_STEP_CACHE": "magcache"}, "FLUX_STEP_CACHE"),
    ({"FLUX_CACHE_THRESHOLD": "2"}, "FLUX_CACHE_THRESHOLD"),
    ({"FLUX_CACHE_THRESHOLD": "x"}, "FLUX_CACHE_THRESHOLD"),
    ({"FLUX_WARM_SIZES": "1024x1000"}, "FLUX_WARM_SIZES"),
])
def test_bad_speed_settings_name_the_variable(env, named):
    with pytest.raises(SettingsError, match=named):
        settings_from_env(env)


def test_a_full_size_model_on_the_cpu_warms_one_small_size():
    plan = plan_speed(SpeedRequest(), [], memory.plan([]), "schnell", 1024)
    assert plan.warm_sizes == ((64, 64),)
