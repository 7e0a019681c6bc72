"""What the routes share: load state, loader, queue, LoRA and metrics, and the one
generation path (queue, wait for the result, its client or its deadline)."""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from flux_server import __version__
from flux_server.config import Settings
from flux_server.cost import work_of
from flux_server.devices import memory_report
from flux_server.engine import (
    GenerationCancelled,
    GenerationOutOfMemory,
    GenerationParams,
    encode_image,
    generate,
)
from flux_server.failures import explain
from flux_server.gpu_check import describe as describe_cuda
from flux_server.jobs import Job, JobDropped, JobQueue, QueueFull
from flux_server.loader import PipelineLoader, free_memory
from flux_server.lora import LoraManager
from flux_server.lora_fetch import LoraFetcher
from flux_server.memory import is_out_of_memory
from flux_server.metrics import Metrics
from flux_server.params import generation_params
from flux_server.redact import redact
from flux_server.reqlog import request_fields, request_id_of
from flux_server.speed import format_size
from flux_server.speedup import RECOMPILE_STORM_AFTER, graphs_compiled
from flux_server.state import LoadState

log = logging.getLogger("flux_server.service")

READY_RETRY_AFTER_S = 5
MAX_RETRY_AFTER_S = 600  # the longest wait a Retry-After promises
SHUTDOWN_POLL_S = 0.25  # how often a waiting request looks at the shutdown flag
SHUTDOWN_WAIT_S = 10.0  # how long shutdown waits for a cancelled generation to stop


@dataclass
class GenerationOutcome:
    images: list[bytes]
    seed: int
    params: GenerationParams
    output_format: str
    queue_wait_s: float
    generation_s: float


class HTTPProblem(Exception):
    """An answer other than 200: status, error body and headers."""

    def __init__(self, status: int, type_: str, message: str, hint: str = "",
                 headers: dict[str, str] | None = None, extra: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers or {}
        self.body = {"error": {"type": type_, "message": message, "hint": hint}, **(extra or {})}


WARM_UP_STEPS = 2  # the second step is the first a step cache may skip


def _warm_up(settings: Settings) -> Callable[[Any, Any, tuple[int, int]], None]:
    def warm(pipe, defaults, size: tuple[int, int]) -> None:
        pipe.set_progress_bar_config(disable=True)
        steps = min(WARM_UP_STEPS, defaults.steps)
        generate(pipe, GenerationParams("warm up", size[0], size[1], steps,
                                        defaults.guidance_scale, 0))
    return warm


def retry_after(seconds: float) -> str:
    """A Retry-After value: rounded up, at least 1, at most MAX_RETRY_AFTER_S."""
    return str(min(MAX_RETRY_AFTER_S, max(1, math.ceil(seconds))))


class FluxService:
    """Everything the routes share: load state, loader, queue, LoRA and metrics."""

    def __init__(self, settings: Settings, detect_gpus: Callable[[], list] | None = None,
                 config_error: Exception | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.state = LoadState(settings.model, settings.tiny)
        self.loader = PipelineLoader(settings, self.state, detect_gpus, _warm_up(settings))
        self.queue = JobQueue(settings.queue_size, on_change=self.metrics.queue_depth.set)
        self.lora = LoraManager(LoraFetcher(settings))
        self.config_error = config_error
        self.shutting_down = False
        self.shutdown_at: float | None = None
        self.compiled_since_ready = 0

    def begin_shutdown(self) -> None:
        """Stop admitting and starting generations (safe in a signal handler: assignments
        only). Queued requests see it within SHUTDOWN_POLL_S and get 503 at once; the
        running generation may finish within FLUX_SHUTDOWN_GRACE_S (see _wait)."""
        if self.shutdown_at is None:
            self.shutdown_at = time.monotonic()
        self.queue.holding = True
        self.shutting_down = True

    def close(self) -> None:
        """At the end of the lifespan: stop every generation and wait for the worker."""
        self.begin_shutdown()
        if not self.queue.close("shutdown", SHUTDOWN_WAIT_S):
            log.warning("a generation was still running %ss after shutdown began; exiting "
                        "anyway", SHUTDOWN_WAIT_S)

    def start(self) -> None:
        if self.config_error is not None:
            failure = explain(self.config_error, self.settings)
            log.error("configuration error: type=%s message=%s hint=%s", failure.type,
                      failure.message, failure.hint)
            self.state.fail(failure)
            return
        self.loader.start()

    def require_ready(self) -> Any:
        if self.shutting_down:
            raise _shutting_down(self.settings.shutdown_grace_s)
        snapshot = self.state.snapshot()
        if not snapshot["ready"]:
            failure = snapshot["error"]
            message = f"model is {snapshot['state']}, not ready"
            hint = failure["hint"] if failure else "wait for GET /ready to answer 200"
            if snapshot["state"] == "failed":  # terminal: no Retry-After, x-should-retry false
                raise HTTPProblem(503, "NotReady", message + "; this will not clear by itself: "
                                  "fix the cause and restart the server", hint,
                                  extra={"ready": snapshot})
            raise HTTPProblem(503, "NotReady", message, hint,
                              {"Retry-After": str(READY_RETRY_AFTER_S)}, {"ready": snapshot})
        return self.loader.pipeline

    def params_for(self, prompt: str, width: int | None, height: int | None, steps: int | None,
                   guidance: float | None, seed: int | None, num_images: int,
                   negative_prompt: str | None = None, true_cfg_scale: float = 1.0,
                   fields: tuple[str, str, str] = ("width", "height", "num_images")
                   ) -> GenerationParams:
        return generation_params(self.loader.defaults, self.settings, prompt, width, height,
                                 steps, guidance, seed, num_images, negative_prompt,
                                 true_cfg_scale, fields)

    async def generate(self, request: Request, params: GenerationParams,
                       output_format: str) -> GenerationOutcome:
        """Queue one generation and wait for it, its client, or its deadline."""
        fields = request_fields(request.scope)
        fields.update(width=params.width, height=params.height, steps=params.steps)
        disconnected = asyncio.ensure_future(_disconnect(request))
        try:
            return await self.run_generation(params, output_format, disconnected, fields,
                                             request_id_of(request.scope))
        finally:
            disconnected.cancel()

    async def run_generation(self, params: GenerationParams, output_format: str,
                             disconnected: asyncio.Future | None = None,
                             fields: dict | None = None,
                             request_id: str = "-") -> GenerationOutcome:
        """The generation path without HTTP (a Ray Serve replica calls it directly): queue,
        then wait for the result, the deadline, `disconnected` (done when the client left),
        shutdown, or this task being cancelled (a cancelled Ray call). Raises HTTPProblem."""
        pipe = self.require_ready()
        arrived = time.monotonic()
        fields = {} if fields is None else fields
        size = (params.width, params.height)
        fields["cold_shape"] = "false" if size in self.loader.warm_sizes else "true"
        test_delay = self.settings.test_generate_delay

        def work(job: Job) -> list[bytes]:
            out_of_memory = None
            graphs = graphs_compiled()
            try:
                images = generate(pipe, params, lambda: job.cancelled, test_delay, job.progress)
            except GenerationCancelled as exc:
                self._record_cancel(job, request_id, exc)
                raise
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                out_of_memory = str(exc)
            finally:
                self._note_compiles(graphs_compiled() - graphs, size, fields)
            if out_of_memory is not None:  # outside the except: the tensors can be freed
                free_memory()
                raise GenerationOutOfMemory(out_of_memory)
            return [encode_image(image, output_format) for image in images]

        try:
            job = self.queue.submit(work, work_of(params))
        except QueueFull as exc:
            self.metrics.rejected.inc()
            raise HTTPProblem(429, "QueueFull", str(exc), "retry after the Retry-After seconds",
                              {"Retry-After": retry_after(self.queue.estimated_wait_s())}
                              ) from None
        job.steps_total = params.steps
        waiter = asyncio.wrap_future(job.future)
        waiter.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            await self._wait(job, waiter, arrived + self.settings.queue_timeout, disconnected)
        except asyncio.CancelledError:  # the server (or a Ray caller) cancelled this task
            job.cancel("request cancelled")
            raise
        fields["queue_wait_s"] = job.queue_wait_s
        if job.cancelled and (not waiter.done() or _was_cancelled(waiter)):
            fields["cancelled"] = _label(job.cancel_reason)
            if job.started_at is None:
                self.metrics.dropped.inc()
            else:
                fields["cancelled_at_step"] = f"{job.cancelled_at_step}/{params.steps}"
            if job.cancel_reason == "shutdown":
                raise _shutting_down(self.settings.shutdown_grace_s)
            if job.cancel_reason == "queue timeout":
                raise HTTPProblem(503, "QueueTimeout", f"the generation did not start within "
                                  f"FLUX_QUEUE_TIMEOUT={self.settings.queue_timeout:g}s",
                                  "retry after the Retry-After seconds, or ask for less work",
                                  {"Retry-After": retry_after(self.queue.estimated_wait_s())})
            if job.cancel_reason == "timeout":
                raise HTTPProblem(504, "Timeout",
                                  f"generation did not finish within FLUX_RUN_TIMEOUT="
                                  f"{self.settings.run_timeout:g}s of running; it was stopped",
                                  "lower steps or size, or raise FLUX_RUN_TIMEOUT")
            raise HTTPProblem(499, "ClientClosedRequest", "client went away")
        try:
            images = waiter.result()
        except Exception as exc:
            log.exception("generation failed")
            hint = "see the server log"
            if isinstance(exc, GenerationOutOfMemory):
                hint = "out of GPU memory for this request: lower width, height or num_images"
            raise HTTPProblem(500, type(exc).__name__,
                              redact(str(exc), [self.settings.hf_token])[:1000], hint) from None
        self.metrics.generation_seconds.observe(job.run_s or 0.0)
        self.metrics.queue_wait_seconds.observe(job.queue_wait_s)
        self.metrics.images.inc(len(images))
        fields["generation_s"] = job.run_s or 0.0
        return GenerationOutcome(images, params.seed, params, output_format, job.queue_wait_s,
                                 job.run_s or 0.0)

    async def _wait(self, job: Job, waiter: asyncio.Future, queue_deadline: float,
                    disconnected: asyncio.Future | None) -> None:
        """Wait for the job; cancel it when it has waited past FLUX_QUEUE_TIMEOUT or run
        past FLUX_RUN_TIMEOUT, when the client disconnects, or on shutdown: at once while
        queued, and while running only when it cannot finish within the grace period (the
        worker stops it at its next step)."""
        if disconnected is None:
            disconnected = asyncio.get_running_loop().create_future()  # never completes
        try:
            while not waiter.done():
                now, started = time.monotonic(), job.started_at
                deadline = queue_deadline if started is None else \
                    started + self.settings.run_timeout
                if now >= deadline:
                    job.cancel("queue timeout" if started is None else "timeout")
                elif self.shutting_down and not self._may_finish(job, now):
                    job.cancel("shutdown")
                elif disconnected.done():
                    job.cancel("client disconnected")
                if job.cancelled:
                    return
                await asyncio.wait({waiter, disconnected}, return_when=asyncio.FIRST_COMPLETED,
                                   timeout=max(0.01, min(SHUTDOWN_POLL_S, deadline - now)))
        finally:
            disconnected.cancel()

    def _may_finish(self, job: Job, now: float) -> bool:
        """During shutdown: True while the running `job` should finish within the grace
        period (judged by its own pace per step); a queued job never may."""
        if job.started_at is None or self.shutdown_at is None:
            return False
        grace_end = self.shutdown_at + self.settings.shutdown_grace_s
        if now >= grace_end:
            return False
        if not job.steps_done or not job.steps_total:
            return True  # no pace yet: let it go on until the grace period ends
        per_step = (now - job.started_at) / job.steps_done
        return now + per_step * (job.steps_total - job.steps_done) <= grace_end

    def _record_cancel(self, job: Job, request_id: str, exc: GenerationCancelled) -> None:
        """Count and log a running generation stopped at a step (in the worker thread)."""
        reason = job.cancel_reason or "request cancelled"
        self.metrics.cancelled.labels(reason=_label(reason)).inc()
        log.info("generation cancelled: id=%s reason=%s cancelled_at_step=%s/%s "
                 "stopped_after_step=%s/%s", request_id, _label(reason), job.cancelled_at_step,
                 exc.steps, exc.steps_done, exc.steps)

    def _note_compiles(self, graphs: int, size: tuple[int, int], fields: dict) -> None:
        """Log graphs torch.compile built during a request; warn of a recompile storm."""
        self.loader.warm_sizes.add(size)
        if graphs <= 0:
            return
        fields["compiled_graphs"] = graphs
        self.compiled_since_ready += graphs
        log.info("compiled %d graphs for %dx%d (a cold shape)", graphs, *size)
        if self.compiled_since_ready >= RECOMPILE_STORM_AFTER:
            log.warning("recompile storm: %d graphs compiled since ready, last for %dx%d; add "
                        "the sizes clients use to FLUX_WARM_SIZES (PLAYBOOK.md#recompile-storm)",
                        self.compiled_since_ready, *size)

    def model_status(self) -> dict:
        loader, snapshot = self.loader, self.state.snapshot()
        status = {
            "model": self.settings.model,
            "tiny": self.settings.tiny,
            "label": "tiny random-weight test pipeline" if self.settings.tiny else None,
            "state": snapshot["state"],
            "ready": snapshot["ready"],
            "error": snapshot["error"],
            "kind": loader.defaults.kind,
            "defaults": {"num_inference_steps": loader.defaults.steps,
                         "guidance_scale": loader.defaults.guidance_scale,
                         "width": loader.defaults.size, "height": loader.defaults.size},
            "dtype": loader.plan.dtype if loader.plan else None,
            "strategy": loader.plan.as_dict() if loader.plan else None,
            "plans_tried": loader.plans_tried,
            "fallback_used": len(loader.plans_tried) > 1,
            "attention_slicing": "not used: a no-op for FLUX pipelines",
            "speed": _speed_status(loader),
            "gpus": [g._asdict() for g in loader.gpus],
            "cuda": describe_cuda(loader.cuda) if loader.cuda else None,
            "gpu_memory": _gpu_memory(),
            "queue": {"depth": self.queue.depth, "max_waiting": self.queue.max_waiting,
                      "running": self.queue.running is not None,
                      "running_steps": _steps_of(self.queue.running),
                      "completed": self.queue.completed, "dropped": self.queue.dropped},
            "load": {"elapsed_s": snapshot["elapsed_s"],
                     "phase_elapsed_s": snapshot["phase_elapsed_s"],
                     "progress": snapshot["progress"]},
            "lora": self.lora.status(),
            "settings": self.settings.public(),
            "versions": _versions(),
        }
        return status


async def _disconnect(request: Request) -> None:
    """Return when the client disconnects (the body has been read by then)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _label(reason: str | None) -> str:
    return (reason or "request cancelled").replace(" ", "_")


def _shutting_down(grace_s: float = READY_RETRY_AFTER_S) -> HTTPProblem:
    return HTTPProblem(503, "ShuttingDown", "the server is shutting down",
                       "retry after the Retry-After seconds, once the server is back",
                       {"Retry-After": retry_after(max(grace_s, READY_RETRY_AFTER_S))})


def _steps_of(job: Job | None) -> dict | None:
    if job is None:
        return None
    return {"done": job.steps_done, "total": job.steps_total}


def _speed_status(loader: PipelineLoader) -> dict | None:
    if loader.speed_plan is None:
        return None
    return {**loader.speed_plan.as_dict(),
            "sizes_run": sorted(format_size(s) for s in loader.warm_sizes),
            "graphs_compiled": graphs_compiled()}


def _was_cancelled(waiter: asyncio.Future) -> bool:
    exc = waiter.exception() if not waiter.cancelled() else None
    return isinstance(exc, (GenerationCancelled, JobDropped))


def _gpu_memory() -> list[dict]:
    if "torch" not in sys.modules:
        return []
    return memory_report()


def _versions() -> dict:
    versions = {"flux_server": __version__}
    for name in ("torch", "diffusers", "transformers"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "?")
    return versions
