"""`server.device_map` (or FLUX_DEVICE_MAP in a preset's `env`): only what diffusers accepts
for a whole pipeline, refused before the VM downloads about 30 GB to find out. Pure.

diffusers 0.42's `DiffusionPipeline.from_pretrained` accepts `balanced`, the accelerator
(`cuda`) and `cpu`; anything else, `auto` above all (seed 000's headline mistake), raises
``NotImplementedError: auto not supported. Supported strategies are: balanced, ...`` after
the download (NOTES.md, reproduced on the tiny model: tests/unit/test_preset_device_map.py).
"""

from __future__ import annotations

from collections.abc import Mapping

PIPELINE_DEVICE_MAPS = ("balanced", "cuda", "cpu")
ENV_NAME = "FLUX_DEVICE_MAP"


def device_map_problem(value: str) -> str | None:
    """Why `value` cannot be a pipeline's device_map (None when diffusers accepts it)."""
    if value.strip() in PIPELINE_DEVICE_MAPS:
        return None
    return (f"{value!r} is not a pipeline device map: diffusers supports only `balanced` for "
            "a whole pipeline (`auto` is for single transformers/accelerate models); the "
            "server would download the model, then fail with \"NotImplementedError: "
            f"{value} not supported\". Allowed: {', '.join(PIPELINE_DEVICE_MAPS)}. Use "
            "`balanced` to spread the components over several GPUs, or remove it and let "
            "`server.memory` choose (auto, gpu, model-offload)")


def check_device_map(value: str | None) -> str | None:
    """`server.device_map` validated: the value, or ValueError naming what is allowed."""
    problem = device_map_problem(value) if value is not None else None
    if problem:
        raise ValueError(problem)
    return value


def check_env_device_map(env: Mapping[str, str]) -> None:
    """A preset's `env` may not set FLUX_DEVICE_MAP to what diffusers refuses (ValueError)."""
    value = env.get(ENV_NAME)
    problem = device_map_problem(value) if value is not None else None
    if problem:
        raise ValueError(f"{ENV_NAME}: {problem}")
