"""The loader in-process: real diffusers loading of the tiny pipeline, component progress,
a genuine diffusers error for a folder that is not a pipeline, and the OOM fallback chain."""

from __future__ import annotations

import pytest
from flux_server import memory
from flux_server.config import Settings
from flux_server.loader import PipelineLoader, count_components, looks_local
from flux_server.memory import GpuInfo
from flux_server.state import LoadState

H100 = GpuInfo("NVIDIA H100", 85 * 10**9, (9, 0))


class OutOfMemoryError(RuntimeError):
    """Stands in for torch.cuda.OutOfMemoryError (matched by name and message)."""


def _loader(settings: Settings, gpus=(), warm=None) -> PipelineLoader:
    return PipelineLoader(settings, LoadState(settings.model, settings.tiny),
                          detect_gpus=lambda: list(gpus), warm_up=warm)


def test_local_pipeline_loads_through_from_pretrained_with_progress(tiny_dir):
    warmed = []
    loader = _loader(Settings(model=str(tiny_dir)), warm=lambda pipe, d, size: warmed.append(d))
    loader.run()
    snap = loader.state.snapshot()
    assert snap["state"] == "ready", snap
    assert snap["progress"] == {"components_done": 7, "components_total": 7,
                                "warm_sizes_done": 1, "warm_sizes_total": 1}
    assert type(loader.pipeline).__name__ == "FluxPipeline"
    assert warmed and warmed[0].kind == "schnell"  # no guidance embeddings
    assert count_components(str(tiny_dir)) == 7


def test_folder_without_model_index_fails_with_diffusers_error(tmp_path):
    loader = _loader(Settings(model=str(tmp_path)))
    loader.run()
    error = loader.state.snapshot()["error"]
    assert loader.state.state == "failed"
    assert "model_index.json" in error["message"] + error["hint"]


def test_plan_error_fails_before_loading():
    loader = _loader(Settings(model="tiny", memory="gpu"))
    loader.run()
    error = loader.state.snapshot()["error"]
    assert error["type"] == "PlanError" and "--gpus" in error["hint"]


def test_out_of_memory_falls_back_to_a_more_frugal_plan(tiny_dir, monkeypatch, caplog):
    loader = _loader(Settings(model=str(tiny_dir)), gpus=[H100])
    attempts = []

    def fake_load(path, plan):
        attempts.append(plan.strategy)
        if len(attempts) == 1:
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        loader.pipeline = object()

    monkeypatch.setattr(loader, "_load", fake_load)
    monkeypatch.setattr(loader, "_speed_up", lambda plan, backends: None)  # no real transformer
    loader.run()
    assert loader.state.state == "ready"
    assert attempts == ["gpu", "model-offload"]
    assert [p["outcome"] for p in loader.plans_tried] == ["out of memory", "ok"]
    assert "falling back to model-offload" in caplog.text


def test_out_of_memory_at_the_end_of_the_chain_fails(tiny_dir, monkeypatch):
    monkeypatch.setattr(memory, "installed_backends", lambda: memory.ALL_BACKENDS)
    loader = _loader(Settings(model=str(tiny_dir)), gpus=[H100])

    def always_oom(path, plan):
        raise OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(loader, "_load", always_oom)
    loader.run()
    error = loader.state.snapshot()["error"]
    assert error["type"] == "OutOfMemoryError" and "FLUX_QUANT=nf4" in error["hint"]
    assert [p["strategy"] for p in loader.plans_tried] == [
        "gpu", "model-offload", "model-offload", "sequential-offload"]


@pytest.mark.parametrize("model,local", [
    ("/models/flux", True), ("./flux", True), ("~/flux", True),
    ("black-forest-labs/FLUX.1-schnell", False),
])
def test_looks_local(model, local):
    assert looks_local(model) is local


def test_int8_quantization_loads_for_real_on_cpu(tiny_dir):
    pytest.importorskip("torchao")
    loader = _loader(Settings(model=str(tiny_dir), quant="int8"))
    loader.run()
    assert loader.state.state == "ready", loader.state.snapshot()
    assert loader.plan.quant.method == "int8"
    weight = loader.pipeline.transformer.transformer_blocks[0].attn.to_q.weight
    assert "Int8" in type(weight).__name__


@pytest.mark.parametrize("quant,gpu,config", [
    ("nf4", GpuInfo("NVIDIA A10", 25 * 10**9, (8, 6)), "BitsAndBytesConfig"),
    ("int8", GpuInfo("NVIDIA A10", 25 * 10**9, (8, 6)), "TorchAoConfig"),
    ("fp8", H100, "TorchAoConfig"),
])
def test_quantization_configs_for_transformer_and_t5(quant, gpu, config):
    pytest.importorskip("bitsandbytes" if quant == "nf4" else "torchao")
    from flux_server.loader import quantization_config

    built = quantization_config(memory.plan([gpu], quant=quant).quant)
    assert set(built.quant_mapping) == {"transformer", "text_encoder_2"}
    classes = {type(c).__module__.split(".")[0] for c in built.quant_mapping.values()}
    assert classes == {"diffusers", "transformers"}
    assert all(type(c).__name__ == config for c in built.quant_mapping.values())
