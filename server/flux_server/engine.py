"""Run one generation on the pipeline and encode its images (called by the queue worker)."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


class GenerationCancelled(Exception):
    """The request went away (client left, its timeout passed, or the server is shutting
    down): the generation stopped at the end of a denoising step."""

    def __init__(self, steps_done: int = 0, steps: int = 0) -> None:
        super().__init__(f"generation cancelled after step {steps_done}/{steps}")
        self.steps_done, self.steps = steps_done, steps


class GenerationOutOfMemory(RuntimeError):
    """The GPU ran out of memory during one generation (the server goes on)."""


@dataclass(frozen=True)
class GenerationParams:
    prompt: str
    width: int
    height: int
    steps: int
    guidance_scale: float
    seed: int
    num_images: int = 1
    negative_prompt: str | None = None
    true_cfg_scale: float = 1.0


def encode_image(image: Any, output_format: str) -> bytes:
    """PIL image -> bytes in png, jpeg or webp (deterministic for the same pixels)."""
    buffer = io.BytesIO()
    if output_format == "png":
        image.save(buffer, format="PNG")
    elif output_format == "jpeg":
        image.convert("RGB").save(buffer, format="JPEG", quality=95)
    elif output_format == "webp":
        image.save(buffer, format="WEBP", quality=90)
    else:
        raise ValueError(f"unknown output format {output_format!r}")
    return buffer.getvalue()


def generate(pipe: Any, params: GenerationParams, cancelled: Callable[[], bool] = lambda: False,
             test_delay: float = 0.0,
             on_step: Callable[[int, int], None] = lambda done, total: None) -> list[Any]:
    """PIL images for `params`; image i is seeded with seed + i.

    After each denoising step, `on_step(done, total)` is called and then `cancelled()` is
    checked: when it is true the pipeline is stopped there by raising GenerationCancelled
    from diffusers' `callback_on_step_end`. (diffusers 0.42's FluxPipeline also honours
    `pipe._interrupt = True`, but only by skipping the remaining steps: it still decodes the
    half-denoised latents through the VAE and returns an image nobody wants.)
    `test_delay` (FLUX_TEST_GENERATE_DELAY) is spread over the steps, slept at each step's
    end and not interruptible, like the work of a slow step on a real GPU."""
    import torch  # lazy: torch loads with the model, not at start-up

    step_delay = test_delay / max(1, params.steps)

    def on_step_end(_pipe, step, _timestep, callback_kwargs):
        if step_delay:
            time.sleep(step_delay)
        on_step(step + 1, params.steps)
        if cancelled():
            raise GenerationCancelled(step + 1, params.steps)
        return callback_kwargs

    generators = [torch.Generator(device="cpu").manual_seed(params.seed + i)
                  for i in range(params.num_images)]
    kwargs: dict[str, Any] = {}
    if params.negative_prompt:
        kwargs["negative_prompt"] = params.negative_prompt
        kwargs["true_cfg_scale"] = params.true_cfg_scale
    try:
        with torch.inference_mode():
            result = pipe(
                prompt=params.prompt,
                width=params.width,
                height=params.height,
                num_inference_steps=params.steps,
                guidance_scale=params.guidance_scale,
                num_images_per_prompt=params.num_images,
                generator=generators,
                output_type="pil",
                callback_on_step_end=on_step_end,
                **kwargs,
            )
    except GenerationCancelled:
        _offload_after_interrupt(pipe)
        raise
    return list(result.images)


def _offload_after_interrupt(pipe: Any) -> None:
    """What the pipeline does at its normal end: with model CPU offload, put every model
    back on the CPU (otherwise the transformer would stay on the GPU into the next run)."""
    free_hooks = getattr(pipe, "maybe_free_model_hooks", None)
    if free_hooks is not None:
        free_hooks()
