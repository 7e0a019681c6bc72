"""Load the pipeline in a background thread, moving the LoadState along its phases.

starting (plan) -> downloading (hub ids only) -> loading (from_pretrained, placement, speed
options) -> warming (one short generation per warm size, compiling where the speed plan
compiles) -> ready. A CUDA out-of-memory error while loading or
warming falls back to the next more frugal plan (memory.fallback); any other error, or the
end of the chain, ends in `failed` with a reason (failures.explain).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flux_server import compile_cache, gpu_check, memory, speed
from flux_server.config import Settings
from flux_server.defaults import ModelDefaults, model_defaults
from flux_server.devices import probe_cuda
from flux_server.download import check_local_model, download_verified
from flux_server.failures import explain
from flux_server.speedup import apply_speed_plan, graphs_compiled
from flux_server.state import LoadState
from flux_server.tiny import save_tiny_pipeline

log = logging.getLogger("flux_server.loader")

TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
COMPONENTS_DESC = "Loading pipeline components"


class ModelPathNotFound(FileNotFoundError):
    """FLUX_MODEL names a local path that does not exist."""


def looks_local(model: str) -> bool:
    """True when FLUX_MODEL is meant as a path rather than a hub id."""
    return model.startswith(("/", "./", "../", "~")) or os.path.exists(model)


def torch_dtype(name: str):
    import torch  # lazy: torch loads with the model, not at start-up

    return getattr(torch, TORCH_DTYPES[name])


def _backend_configs(spec: memory.QuantSpec, module: str):
    """One quantization config object for `module` (diffusers or transformers) per spec."""
    configs = __import__(module, fromlist=["BitsAndBytesConfig", "TorchAoConfig"])
    kwargs = dict(spec.kwargs)
    if spec.backend == "bitsandbytes_4bit":
        kwargs["bnb_4bit_compute_dtype"] = torch_dtype(kwargs["bnb_4bit_compute_dtype"])
        return configs.BitsAndBytesConfig(**kwargs)
    import torchao.quantization as ao  # lazy: optional extra (quant)

    extra = {}
    if "granularity" in kwargs:
        extra["granularity"] = getattr(ao, kwargs["granularity"])()
    return configs.TorchAoConfig(quant_type=getattr(ao, kwargs["config"])(**extra))


def quantization_config(spec: memory.QuantSpec):
    """diffusers' PipelineQuantizationConfig for a plan's QuantSpec, as an explicit mapping:
    the transformer gets diffusers' config class, the T5 encoder transformers' one."""
    from diffusers.quantizers import PipelineQuantizationConfig  # lazy: loads with the model

    mapping = {name: _backend_configs(spec, "diffusers" if name == "transformer"
                                      else "transformers")
               for name in spec.components}
    return PipelineQuantizationConfig(quant_mapping=mapping)


@contextlib.contextmanager
def component_progress(report: Callable[[int, int], None]) -> Iterator[None]:
    """Report (i, n) as diffusers loads pipeline component i of n."""
    from diffusers.utils import logging as diffusers_logging  # lazy: diffusers loads with the model

    original = diffusers_logging.tqdm

    class _Counting:
        def __call__(self, iterable=None, *args, **kwargs):
            if not str(kwargs.get("desc", "")).startswith(COMPONENTS_DESC) or iterable is None:
                return original(iterable, *args, **kwargs)
            items = list(iterable)
            report(0, len(items))

            def counted():
                for index, item in enumerate(items):
                    yield item
                    report(index + 1, len(items))
            return counted()

        def __getattr__(self, name: str) -> Any:
            return getattr(original, name)

    # a stand-in for diffusers' tqdm wrapper: it forwards every other use to the original
    diffusers_logging.tqdm = _Counting()  # type: ignore[assignment]  # see the line above
    try:
        yield
    finally:
        diffusers_logging.tqdm = original


def count_components(path: str) -> int | None:
    """Components listed in a pipeline folder's model_index.json (None if unreadable)."""
    try:
        index = json.loads((Path(path) / "model_index.json").read_text())
    except (OSError, ValueError):
        return None
    return sum(1 for k, v in index.items() if not k.startswith("_") and isinstance(v, list)
               and v[0] is not None)


def place(pipe, plan: memory.MemoryPlan) -> None:
    """Apply a plan's placement to a freshly loaded pipeline."""
    if plan.strategy == "gpu":
        pipe.to("cuda")
    elif plan.strategy == "model-offload":
        pipe.enable_model_cpu_offload()
    elif plan.strategy == "sequential-offload":
        pipe.enable_sequential_cpu_offload()
    # cpu: stays where it was loaded; balanced / device-map: placed by from_pretrained


def free_memory() -> None:
    gc.collect()
    try:
        import torch  # lazy: torch loads with the model, not at start-up

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


class PipelineLoader:
    """Owns the loaded pipeline once `state` is ready; `start()` runs the load in a thread."""

    def __init__(self, settings: Settings, state: LoadState,
                 detect_gpus: Callable[[], list | gpu_check.CudaProbe] | None = None,
                 warm_up: Callable[[Any, ModelDefaults, speed.Size], None] | None = None
                 ) -> None:
        self.settings = settings
        self.state = state
        self._detect_gpus = detect_gpus
        self._warm_up = warm_up
        self.pipeline: Any = None
        self.plan: memory.MemoryPlan | None = None
        self.plans_tried: list[dict] = []
        self.speed_plan: speed.SpeedPlan | None = None
        self.warm_sizes: set[speed.Size] = set()  # sizes run at least once since load
        self.gpus: list[memory.GpuInfo] = []
        self.cuda: gpu_check.CudaProbe | None = None
        self.defaults = model_defaults(settings.model, settings.tiny)
        self.source_path: str | None = None
        self._tempdir: tempfile.TemporaryDirectory | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> threading.Thread:
        self.thread = threading.Thread(target=self.run, name="pipeline-loader", daemon=True)
        self.thread.start()
        return self.thread

    def run(self) -> None:
        """Load, never raise: errors end in the `failed` state, logged with their reason."""
        try:
            self._run()
        except BaseException as exc:
            failure = explain(exc, self.settings)
            log.error("model load failed: model=%s type=%s message=%s hint=%s",
                      self.settings.model, failure.type, failure.message, failure.hint,
                      exc_info=exc)
            self.state.fail(failure)

    def _run(self) -> None:
        settings = self.settings
        label = " (tiny random-weight test pipeline)" if settings.tiny else ""
        log.info("loading model=%s%s", settings.model, label)
        if not settings.tiny and looks_local(settings.model) and not os.path.isdir(
                os.path.expanduser(settings.model)):  # fail fast, before importing torch
            raise ModelPathNotFound(f"FLUX_MODEL={settings.model}: no such directory")
        self.gpus = self._check_gpus()
        backends = memory.installed_backends()
        plan = memory.plan(self.gpus, settings.memory, settings.quant, settings.dtype,
                           settings.device_map, backends)
        self._plan_speed(plan, backends)  # a bad speed option fails before any download
        path = self._fetch()
        if settings.test_load_delay:
            time.sleep(settings.test_load_delay)
        while True:
            self.plan = plan
            self.plans_tried.append({**plan.as_dict(), "outcome": "loading"})
            log.info("memory plan: %s (%s)", plan.describe(), "; ".join(plan.reasons))
            try:
                self._load(path, plan)
                self._speed_up(plan, backends)
                self.state.advance("warming")
                self._warm()
                self.plans_tried[-1]["outcome"] = "ok"
                break
            except Exception as exc:
                if not memory.is_out_of_memory(exc):
                    self.plans_tried[-1]["outcome"] = f"error: {type(exc).__name__}"
                    raise
                self.plans_tried[-1]["outcome"] = "out of memory"
                following = memory.fallback(plan, backends)
                if following is None:
                    raise
            # Out of the except block, the traceback no longer holds the half-loaded
            # pipeline, so its GPU memory can really be freed before the next attempt.
            self.pipeline = None
            free_memory()
            log.warning("CUDA out of memory with %s; falling back to %s",
                        plan.describe(), following.describe())
            plan = following
            if self.state.state == "warming":
                self.state.advance("loading")
        self.state.advance("ready")
        log.info("model ready: model=%s%s strategy=%s dtype=%s", settings.model, label,
                 plan.strategy, plan.dtype)

    def _check_gpus(self) -> list[memory.GpuInfo]:
        """Log what CUDA sees; raise GpuNotVisible when a GPU is required and there is none."""
        if self._detect_gpus is None:
            probe = probe_cuda()
        else:  # injected: a CudaProbe, or just the list of GPUs
            found = self._detect_gpus()
            probe = found if isinstance(found, gpu_check.CudaProbe) \
                else gpu_check.CudaProbe.from_gpus(found)
        self.cuda = probe
        line = gpu_check.describe(probe)
        if probe.available and probe.gpus:
            log.info("%s", line)
        elif self.settings.require_gpu:
            log.error("%s", line)
        else:
            log.info("%s; the model runs on the CPU (FLUX_REQUIRE_GPU is not set)", line)
        gpu_check.check_required(probe, self.settings.require_gpu)
        return list(probe.gpus)

    def _fetch(self) -> str:
        """Make the pipeline folder available locally: build tiny, check a path, or download."""
        model = self.settings.model
        if self.settings.tiny:
            self.state.advance("loading")
            self._tempdir = tempfile.TemporaryDirectory(prefix="flux-tiny-")
            self.source_path = str(save_tiny_pipeline(self._tempdir.name))
        elif looks_local(model):
            self.state.advance("loading")
            path = os.path.expanduser(model)
            if not os.path.isdir(path):
                raise ModelPathNotFound(f"FLUX_MODEL={model}: no such directory")
            check_local_model(path)  # a cut file or LFS pointer named before diffusers trips
            self.source_path = path
        else:
            self.state.advance("downloading")
            def report(done: int, total: int | None) -> None:
                self.state.set_progress(bytes_done=done, bytes_total=total)

            self.source_path = download_verified(model, self.settings.hf_token, report)
            self.state.advance("loading")
        total = count_components(self.source_path)
        if total is not None:
            self.state.set_progress(components_done=0, components_total=total)
        return self.source_path

    def _load(self, path: str, plan: memory.MemoryPlan) -> None:
        from diffusers import FluxPipeline  # lazy: diffusers loads with the model

        kwargs: dict[str, Any] = {"dtype": torch_dtype(plan.dtype)}
        if plan.quant is not None:
            kwargs["quantization_config"] = quantization_config(plan.quant)
        if plan.device_map is not None:
            kwargs["device_map"] = plan.device_map

        def report(done: int, total: int) -> None:
            self.state.set_progress(components_done=done, components_total=total)

        with component_progress(report):
            pipe = FluxPipeline.from_pretrained(path, **kwargs)
        place(pipe, plan)
        guidance = getattr(getattr(pipe, "transformer", None), "config", None)
        self.defaults = model_defaults(self.settings.model, self.settings.tiny,
                                       getattr(guidance, "guidance_embeds", None))
        self.pipeline = pipe

    def _plan_speed(self, plan: memory.MemoryPlan, backends: frozenset[str]
                    ) -> speed.SpeedPlan:
        self.speed_plan = speed.plan_speed(self.settings.speed, self.gpus, plan,
                                           self.defaults.kind, self.defaults.size, backends)
        return self.speed_plan

    def _speed_up(self, plan: memory.MemoryPlan, backends: frozenset[str]) -> None:
        """Plan again with the model kind now known, and apply it to the loaded pipeline;
        a plan that compiles keeps its graphs in the persistent compile cache."""
        speed_plan = self._plan_speed(plan, backends)
        if speed_plan.compile != "off":
            import torch  # lazy: loaded by now; its version keys the cache

            device = self.gpus[0].name if self.gpus else "cpu"
            folder = compile_cache.use_cache(
                compile_cache.cache_root(os.environ),
                compile_cache.cache_key(device, torch.__version__, speed_plan.as_dict()))
            log.info("compile cache: %s", folder)
        apply_speed_plan(self.pipeline, speed_plan)

    def _warm_runs(self) -> int:
        """Runs per warm size: two when a step cache runs under torch.compile, whose second
        call may take a path (cached steps) the first did not, and compile it."""
        plan = self.speed_plan
        return 2 if plan is not None and plan.compile != "off" and plan.cache != "off" else 1

    def _warm(self) -> None:
        """One short generation per warm size (compiling it where the plan compiles), with
        `warm_sizes_done/total` progress and a `warming i/n sizes` log line each."""
        sizes = self.speed_plan.warm_sizes if self.speed_plan else ()
        self.warm_sizes = set()
        self.state.set_progress(warm_sizes_done=0, warm_sizes_total=len(sizes))
        compile_mode = self.speed_plan.compile if self.speed_plan else "off"
        compiling = compile_mode != "off"
        log.info("warming %d sizes: %s%s", len(sizes),
                 ",".join(speed.format_size(s) for s in sizes),
                 f" (compile={compile_mode}: each new size compiles first, minutes "
                 "on a GPU; PLAYBOOK.md#compile-slow-start)" if compiling else "")
        for index, size in enumerate(sizes, 1):
            started, graphs = time.monotonic(), graphs_compiled()
            for _ in range(self._warm_runs()):
                if self._warm_up is not None:
                    self._warm_up(self.pipeline, self.defaults, size)
            self.warm_sizes.add(size)
            self.state.set_progress(warm_sizes_done=index)
            log.info("warming %d/%d sizes: %s in %.1fs (%d graphs compiled)", index,
                     len(sizes), speed.format_size(size), time.monotonic() - started,
                     graphs_compiled() - graphs)
        if compiling:
            hits, misses = compile_cache.cache_counts()
            self.state.set_progress(compile_cache_hits=hits, compile_cache_misses=misses)
            log.info("warm-up: %s", compile_cache.describe(hits, misses))
