"""A request's generation parameters: the model's defaults filled in, then checked against
the server's limits (size, images, the work budget, the negative-prompt rule). Shared by the
plain and the Ray Serve paths."""

from __future__ import annotations

import secrets
from typing import Any

from flux_server.config import Settings
from flux_server.cost import budget_for, check_budget
from flux_server.engine import GenerationParams
from flux_server.schemas import InputError, check_limits


def generation_params(d: Any, settings: Settings, prompt: str, width: int | None,
                      height: int | None, steps: int | None, guidance: float | None,
                      seed: int | None, num_images: int, negative_prompt: str | None = None,
                      true_cfg_scale: float = 1.0,
                      fields: tuple[str, str, str] = ("width", "height", "num_images")
                      ) -> GenerationParams:
    """A request's parameters with the model's defaults `d` filled in, checked against the
    server's limits (422 naming `fields`); shared by the plain and the Ray Serve paths."""
    default_side = min(d.size, settings.max_side)  # a default is always allowed
    width, height = width or default_side, height or default_side
    check_limits(width, height, num_images, settings.max_side, settings.max_images, *fields)
    if negative_prompt and true_cfg_scale <= 1:  # never ignored silently (docs/contract.md)
        raise InputError("true_cfg_scale", "must be above 1 for negative_prompt to have an "
                         "effect: set it (4.0 is a common choice), or leave out "
                         "negative_prompt; true CFG runs the transformer twice per step, so the "
                         "request counts twice against FLUX_MAX_WORK")
    params = GenerationParams(
        prompt=prompt, width=width, height=height,
        steps=steps if steps is not None else d.steps,
        guidance_scale=float(guidance if guidance is not None else d.guidance_scale),
        seed=seed if seed is not None else secrets.randbelow(2**32),
        num_images=num_images, negative_prompt=negative_prompt,
        true_cfg_scale=float(true_cfg_scale))
    check_budget(params, budget_for(settings.max_work, d.kind), fields)
    return params
