"""Run one generation on the pipeline and encode its images (called by the queue worker)."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any, Callable

MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


class GenerationCancelled(Exception):
    """The request went away (client left, or its timeout passed) during generation."""


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


def _sleep_unless_cancelled(seconds: float, cancelled: Callable[[], bool]) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cancelled():
            raise GenerationCancelled("request cancelled")
        time.sleep(min(0.05, max(0.0, end - time.monotonic())))


def generate(pipe: Any, params: GenerationParams, cancelled: Callable[[], bool] = lambda: False,
             test_delay: float = 0.0) -> list[Any]:
    """PIL images for `params`; image i is seeded with seed + i. Checks `cancelled` each step."""
    import torch

    if test_delay:
        _sleep_unless_cancelled(test_delay, cancelled)

    def on_step_end(_pipe, _step, _timestep, callback_kwargs):
        if cancelled():
            raise GenerationCancelled("request cancelled during generation")
        return callback_kwargs

    generators = [torch.Generator(device="cpu").manual_seed(params.seed + i)
                  for i in range(params.num_images)]
    kwargs: dict[str, Any] = {}
    if params.negative_prompt:
        kwargs["negative_prompt"] = params.negative_prompt
        kwargs["true_cfg_scale"] = params.true_cfg_scale
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
    return list(result.images)
