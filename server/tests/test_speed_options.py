"""Every speed option on the CPU with the tiny pipeline: the output for a fixed seed stays
close to the plain output, within a tolerance that follows from what the option changes.

Images are compared as floats in [0, 1] after the VAE (output_type="np"):
- fused QKV and torch.compile only reorder float32 arithmetic: max difference 2e-3
  (measured about 6e-4 after 4 steps and the VAE, which amplify rounding);
- fp8 rounds every weight to e4m3 (3 mantissa bits, relative error up to 1/16): PSNR of at
  least 35 dB (measured about 52 dB);
- a step cache reuses the previous step's residuals when the first block barely changed: at
  threshold 1.0 it must really skip (the output differs) and still stay within 40 dB PSNR
  on a 4-step run (measured about 63 dB).
Compile tests are marked `compile` (each compiles tiny blocks for tens of seconds here).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flux_server.speed import SpeedPlan
from flux_server.speedup import apply_speed_plan, graphs_compiled
from flux_server.tiny import build_tiny_pipeline

SIZE = (32, 32)
OTHER_SIZE = (48, 32)
STEPS = 4


def render(pipe, size=SIZE, steps=STEPS) -> np.ndarray:
    generator = torch.Generator().manual_seed(7)
    with torch.inference_mode():
        out = pipe(prompt="a red cat", width=size[0], height=size[1],
                   num_inference_steps=steps, guidance_scale=0.0, generator=generator,
                   output_type="np")
    return out.images[0]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def tuned(plan: SpeedPlan):
    pipe = build_tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    apply_speed_plan(pipe, plan)
    return pipe


@pytest.fixture(scope="module")
def plain() -> np.ndarray:
    torch.set_num_threads(1)
    pipe = build_tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return render(pipe)


def test_fused_qkv_matches_plain_output(plain):
    pipe = tuned(SpeedPlan(fuse_qkv=True))
    assert pipe.transformer.transformer_blocks[0].attn.fused_projections
    assert np.abs(render(pipe) - plain).max() <= 2e-3


def test_fp8_weights_stay_close_to_plain_output(plain):
    pipe = tuned(SpeedPlan(fuse_qkv=True, fp8=True))
    weight = pipe.transformer.transformer_blocks[0].attn.to_qkv.weight
    assert "Float8" in type(weight).__name__  # really quantized (torchao tensor subclass)
    image = render(pipe)
    assert not np.array_equal(image, plain)
    assert psnr(image, plain) >= 35


def test_first_block_cache_skips_and_stays_close(plain):
    image = render(tuned(SpeedPlan(cache="first-block", cache_threshold=1.0)))
    assert not np.array_equal(image, plain)  # steps were skipped
    assert psnr(image, plain) >= 40


def test_first_block_cache_at_threshold_zero_is_exact(plain):
    image = render(tuned(SpeedPlan(cache="first-block", cache_threshold=0.0)))
    assert np.array_equal(image, plain)


def test_taylorseer_cache_stays_close(plain):
    image = render(tuned(SpeedPlan(cache="taylorseer")))
    assert psnr(image, plain) >= 40


@pytest.fixture(scope="module")
def regional(plain):
    """One regionally compiled pipeline, warmed at SIZE, shared by the compile tests."""
    pipe = tuned(SpeedPlan(compile="regional", fuse_qkv=True))
    before = graphs_compiled()
    first = render(pipe)
    return pipe, first, graphs_compiled() - before


@pytest.mark.compile
def test_regional_compile_matches_plain_output(plain, regional):
    _pipe, first, graphs = regional
    assert graphs >= 2  # one double block and one single block graph at least
    assert np.abs(first - plain).max() <= 2e-3


@pytest.mark.compile
def test_a_second_request_of_a_warm_size_does_not_recompile(regional):
    pipe, first, _ = regional
    before = graphs_compiled()
    with torch._dynamo.config.patch(error_on_recompile=True):
        again = render(pipe)
    assert graphs_compiled() == before
    assert np.abs(again - first).max() <= 2e-3


@pytest.mark.compile
def test_another_size_still_works_on_the_compiled_pipeline(regional):
    pipe, _, _ = regional
    image = render(pipe, OTHER_SIZE)
    assert image.shape == (OTHER_SIZE[1], OTHER_SIZE[0], 3)


@pytest.mark.compile
def test_whole_model_compile_matches_plain_output(plain):
    torch._dynamo.reset()
    pipe = tuned(SpeedPlan(compile="full"))
    assert np.abs(render(pipe) - plain).max() <= 2e-3


@pytest.mark.compile
def test_the_shipped_h100_combination_compiles_once_and_stays_close(plain):
    """Regional compile + fused QKV + fp8 + first-block cache (lambda-h100's options; fp8 is
    weights-only on the CPU). The cache's hooks are graph breaks, so the blocks compile with
    fullgraph off; after the loader's two warm-up runs, a request compiles nothing."""
    torch._dynamo.reset()
    pipe = tuned(SpeedPlan(compile="regional", fuse_qkv=True, fp8=True, cache="first-block",
                           cache_threshold=1.0))
    first = render(pipe)
    render(pipe)  # the loader's second warm-up run when a cache runs under compile
    before = graphs_compiled()
    with torch._dynamo.config.patch(error_on_recompile=True):
        again = render(pipe)
    assert graphs_compiled() == before
    assert psnr(first, plain) >= 35 and psnr(again, plain) >= 35
