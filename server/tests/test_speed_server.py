"""Warm shapes through the app in-process with the tiny pipeline: `warming i/n sizes`
progress, /ready only after the last size, the speed plan and its reasons in /model-status,
and `cold_shape` in the request log line."""

from __future__ import annotations

import logging
import time

from fastapi.testclient import TestClient
from flux_server.app import create_app
from flux_server.config import Settings
from flux_server.speed import SpeedRequest

WARM = ((64, 64), (80, 64))


def test_warm_sizes_gate_ready_and_mark_cold_shapes(caplog):
    caplog.set_level(logging.INFO)
    settings = Settings(model="tiny", speed=SpeedRequest(fuse_qkv="on", warm_sizes=WARM))
    app = create_app(settings, detect_gpus=list)
    service = app.state.service
    seen = []
    warm = service.loader._warm_up

    def watching_warm(pipe, defaults, size):
        snap = service.state.snapshot()
        seen.append((size, snap["state"], snap["ready"], snap["progress"]["warm_sizes_done"]))
        warm(pipe, defaults, size)

    service.loader._warm_up = watching_warm
    with TestClient(app) as client:
        deadline = time.monotonic() + 120
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, client.get("/ready").json()
            time.sleep(0.05)
        assert seen == [((64, 64), "warming", False, 0), ((80, 64), "warming", False, 1)]
        assert client.get("/ready").json()["progress"]["warm_sizes_done"] == 2
        assert "warming 1/2 sizes: 64x64" in caplog.text
        assert "warming 2/2 sizes: 80x64" in caplog.text

        speed = client.get("/model-status").json()["speed"]
        assert speed["fuse_qkv"] is True and speed["compile"] == "off"
        assert "fused QKV on as requested" in speed["reasons"]
        assert speed["warm_sizes"] == ["64x64", "80x64"]

        caplog.clear()
        warm_reply = client.post("/generate", json={"prompt": "a cat", "width": 80,
                                                    "height": 64, "seed": 1})
        cold_reply = client.post("/generate", json={"prompt": "a cat", "width": 96,
                                                    "height": 64, "seed": 1})
        again = client.post("/generate", json={"prompt": "a cat", "width": 96, "height": 64,
                                               "seed": 1})
        assert [r.status_code for r in (warm_reply, cold_reply, again)] == [200, 200, 200]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("request ")
             and "route=/generate" in r.getMessage()]
    assert len(lines) == 3
    assert "cold_shape=false" in lines[0]
    assert "cold_shape=true" in lines[1]
    assert "cold_shape=false" in lines[2]  # run once, it is warm now


def test_a_lora_on_fused_qkv_gives_the_unfused_lora_result(tiny_dir, workdir):
    import numpy as np
    import torch
    from diffusers import FluxPipeline
    from flux_server.lora import LoraManager
    from flux_server.tiny import save_tiny_lora
    from safetensors.torch import load_file

    lora_dir = workdir / "speed-lora"
    if not lora_dir.exists():
        save_tiny_lora(tiny_dir, lora_dir)

    def image(fuse: bool):
        pipe = FluxPipeline.from_pretrained(str(tiny_dir))
        pipe.set_progress_bar_config(disable=True)
        if fuse:
            pipe.transformer.fuse_qkv_projections()
        weights = load_file(str(lora_dir / "pytorch_lora_weights.safetensors"))
        LoraManager().swap(pipe, weights, str(lora_dir), 1.0)
        generator = torch.Generator().manual_seed(3)
        return pipe(prompt="a cat", width=32, height=32, num_inference_steps=2,
                    guidance_scale=0.0, generator=generator, output_type="np").images[0]

    assert np.abs(image(fuse=True) - image(fuse=False)).max() <= 2e-3


def test_many_compiles_after_ready_warn_of_a_recompile_storm(caplog):
    from flux_server.speedup import RECOMPILE_STORM_AFTER

    caplog.set_level(logging.INFO)
    service = create_app(Settings(model="tiny")).state.service
    fields: dict = {}
    service._note_compiles(0, (64, 64), fields)
    assert "compiled_graphs" not in fields and (64, 64) in service.loader.warm_sizes
    for side in range(RECOMPILE_STORM_AFTER):
        service._note_compiles(1, (64 + 16 * side, 64), fields)
    assert fields["compiled_graphs"] == 1
    storms = [r for r in caplog.records if "recompile storm" in r.getMessage()]
    assert len(storms) == 1 and storms[0].levelname == "WARNING"
    assert "FLUX_WARM_SIZES" in storms[0].getMessage()


def test_fp8_forced_on_an_a100_fails_before_any_download():
    from flux_server.loader import PipelineLoader
    from flux_server.memory import GpuInfo
    from flux_server.state import LoadState

    settings = Settings(model="black-forest-labs/FLUX.1-dev", speed=SpeedRequest(fp8="on"))
    loader = PipelineLoader(settings, LoadState(settings.model, False),
                            detect_gpus=lambda: [GpuInfo("NVIDIA A100", 85 * 10**9, (8, 0))])
    loader.run()
    snap = loader.state.snapshot()
    assert snap["state"] == "failed" and "downloading" not in snap["phase_elapsed_s"]
    assert snap["error"]["type"] == "PlanError"
    assert "compute capability >= 8.9" in snap["error"]["message"]
    assert "FLUX_FP8=auto or off" in snap["error"]["hint"]


def test_each_size_is_warmed_twice_only_when_a_cache_runs_under_compile():
    from flux_server.loader import PipelineLoader
    from flux_server.speed import SpeedPlan
    from flux_server.state import LoadState

    loader = PipelineLoader(Settings(model="tiny"), LoadState("tiny", True))
    for plan, runs in ((SpeedPlan(compile="regional", cache="first-block"), 2),
                       (SpeedPlan(compile="regional"), 1), (SpeedPlan(cache="taylorseer"), 1)):
        loader.speed_plan = plan
        assert loader._warm_runs() == runs
