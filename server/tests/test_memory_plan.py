"""The memory planner is pure: GPUs and requests in, a plan out (NOTES' published figures)."""

from __future__ import annotations

import pytest
from flux_server.memory import GB, GpuInfo, MemoryPlan, PlanError, fallback, is_out_of_memory, plan

A10 = GpuInfo("NVIDIA A10", 25_393_692_672, (8, 6))  # 23.65 GiB as torch reports it
A100_40 = GpuInfo("NVIDIA A100-SXM4-40GB", 42_298_834_944, (8, 0))
A100_80 = GpuInfo("NVIDIA A100-SXM4-80GB", 85_089_566_720, (8, 0))
H100 = GpuInfo("NVIDIA H100 80GB HBM3", 85_045_870_592, (9, 0))
L4 = GpuInfo("NVIDIA L4", 23_580_639_232, (8, 9))
T4 = GpuInfo("Tesla T4", 15_828_320_256, (7, 5))
SMALL = GpuInfo("NVIDIA RTX 3060", 12_884_901_888, (8, 6))


def test_no_gpu_runs_fp32_on_cpu():
    chosen = plan([])
    assert (chosen.strategy, chosen.device, chosen.dtype, chosen.quant) == (
        "cpu", "cpu", "fp32", None)
    assert chosen.device_map is None


def test_cpu_respects_an_explicit_dtype():
    assert plan([], dtype="bf16").dtype == "bf16"


@pytest.mark.parametrize("gpu", [A100_40, A100_80, H100])
def test_one_large_gpu_is_bf16_on_the_gpu(gpu):
    chosen = plan([gpu])
    assert (chosen.strategy, chosen.device, chosen.dtype, chosen.quant) == (
        "gpu", "cuda", "bf16", None)


@pytest.mark.parametrize("gpu", [A10, L4])
def test_24gb_gpu_quantizes_transformer_and_t5_with_model_offload(gpu):
    chosen = plan([gpu])
    assert chosen.strategy == "model-offload"
    assert chosen.quant is not None and chosen.quant.method == "nf4"
    assert chosen.quant.backend == "bitsandbytes_4bit"
    assert chosen.quant.components == ("transformer", "text_encoder_2")
    assert chosen.quant.kwargs["bnb_4bit_quant_type"] == "nf4"


def test_24gb_gpu_keeps_an_explicit_int8_request():
    chosen = plan([A10], quant="int8")
    assert chosen.strategy == "model-offload"
    assert (chosen.quant.method, chosen.quant.backend) == ("int8", "torchao")


def test_t4_has_no_bf16_so_fp16():
    chosen = plan([T4])
    assert chosen.dtype == "fp16" and chosen.strategy == "model-offload"


def test_small_gpu_uses_sequential_offload():
    assert plan([SMALL]).strategy == "sequential-offload"


def test_several_large_gpus_are_balanced_in_bf16():
    chosen = plan([H100] * 8)
    assert chosen.strategy == "balanced" and chosen.device_map == "balanced"
    assert chosen.quant is None and chosen.dtype == "bf16"


def test_several_24gb_gpus_are_balanced_and_quantized():
    chosen = plan([A10, A10])
    assert chosen.strategy == "balanced" and chosen.device_map == "balanced"
    assert chosen.quant.method == "nf4"


def test_plain_tuples_are_accepted():
    assert plan([("NVIDIA H100", 80 * GB)]).strategy == "gpu"


@pytest.mark.parametrize("gpus", [[], [A10], [H100], [A10, A10]])
def test_auto_never_chooses_device_map_auto(gpus):
    assert plan(gpus).device_map in (None, "balanced")


@pytest.mark.parametrize("value", ["auto", "balanced", "cuda:0"])
def test_expert_device_map_is_passed_as_given(value):
    chosen = plan([H100], device_map=value)
    assert chosen.strategy == "device-map" and chosen.device_map == value
    assert any("FLUX_DEVICE_MAP" in reason for reason in chosen.reasons)


def test_device_map_without_gpu_is_still_passed_as_given():
    assert plan([], device_map="auto").device_map == "auto"


@pytest.mark.parametrize("memory", ["gpu", "balanced", "model-offload", "sequential-offload"])
def test_explicit_strategy_is_honoured(memory):
    chosen = plan([A10], memory=memory)
    assert chosen.strategy == memory
    assert chosen.device_map == ("balanced" if memory == "balanced" else None)


@pytest.mark.parametrize("memory", ["gpu", "balanced", "model-offload", "sequential-offload"])
def test_gpu_strategies_without_gpu_are_plan_errors(memory):
    with pytest.raises(PlanError) as caught:
        plan([], memory=memory)
    assert "--gpus" in caught.value.hint


def test_explicit_cpu_on_a_gpu_machine():
    chosen = plan([H100], memory="cpu")
    assert (chosen.strategy, chosen.device, chosen.dtype) == ("cpu", "cpu", "fp32")


@pytest.mark.parametrize("gpu", [A10, A100_80, T4])
def test_fp8_needs_compute_capability_8_9(gpu):
    with pytest.raises(PlanError) as caught:
        plan([gpu], quant="fp8")
    assert "8.9" in str(caught.value)
    assert "nf4" in caught.value.hint


@pytest.mark.parametrize("gpu", [H100, L4])
def test_fp8_on_ada_and_hopper(gpu):
    chosen = plan([gpu], quant="fp8")
    assert chosen.quant.method == "fp8" and chosen.quant.backend == "torchao"


def test_fp8_with_unknown_capability_is_refused():
    with pytest.raises(PlanError):
        plan([("GPU", 80 * GB)], quant="fp8")


def test_nf4_on_cpu_is_refused_but_int8_is_allowed():
    with pytest.raises(PlanError):
        plan([], quant="nf4")
    assert plan([], quant="int8").quant.method == "int8"


def test_nf4_compute_dtype_follows_the_plan_dtype():
    assert plan([A10], dtype="fp16").quant.kwargs["bnb_4bit_compute_dtype"] == "fp16"


def test_every_plan_says_why():
    for gpus in ([], [A10], [H100], [H100, H100], [SMALL]):
        assert plan(gpus).reasons


def test_fallback_chain_from_gpu_gets_more_frugal_and_ends():
    chain: list[MemoryPlan] = [plan([H100])]
    while (following := fallback(chain[-1])) is not None:
        chain.append(following)
    assert [p.strategy for p in chain] == [
        "gpu", "model-offload", "model-offload", "sequential-offload"]
    assert [p.quant.method if p.quant else "none" for p in chain] == [
        "none", "none", "nf4", "none"]
    assert all("out of memory" in p.reasons[0] for p in chain[1:])
    assert chain[1].device_map is None


def test_fallback_from_balanced_and_device_map_drops_the_map():
    for start in (plan([H100, H100]), plan([H100], device_map="auto")):
        following = fallback(start)
        assert following.strategy == "model-offload" and following.device_map is None


def test_fallback_from_quantized_offload_goes_sequential():
    following = fallback(plan([A10]))
    assert following.strategy == "sequential-offload"
    assert fallback(following) is None


def test_describe_and_as_dict():
    chosen = plan([A10])
    assert chosen.describe() == "model-offload dtype=bf16 quant=nf4"
    data = chosen.as_dict()
    assert data["quantized_components"] == ["transformer", "text_encoder_2"]


class OutOfMemoryError(RuntimeError):
    pass


def test_is_out_of_memory_by_type_message_or_cause():
    assert is_out_of_memory(OutOfMemoryError("boom"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    try:
        try:
            raise OutOfMemoryError("x")
        except OutOfMemoryError as inner:
            raise ValueError("wrapped") from inner
    except ValueError as outer:
        assert is_out_of_memory(outer)
    assert not is_out_of_memory(ValueError("bad value"))


def test_without_bitsandbytes_auto_quantizes_int8_with_torchao():
    chosen = plan([A10], backends=frozenset({"torchao"}))
    assert chosen.strategy == "model-offload" and chosen.quant.method == "int8"


def test_without_any_backend_auto_offloads_bf16_and_says_why():
    chosen = plan([A10], backends=frozenset())
    assert chosen.strategy == "model-offload" and chosen.quant is None
    assert any("no quantization backend" in reason for reason in chosen.reasons)


def test_fallback_skips_quantization_without_backend():
    following = fallback(fallback(plan([H100]), frozenset()), frozenset())
    assert following.strategy == "sequential-offload"
