"""Generation defaults that fit the model. Pure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelDefaults:
    kind: str  # tiny | schnell | dev
    steps: int
    guidance_scale: float
    size: int  # default width and height


def model_defaults(model: str, tiny: bool, guidance_embeds: bool | None = None) -> ModelDefaults:
    """schnell: 4 steps, guidance 0; dev: 28 steps, guidance 3.5; tiny: 2 steps at 64x64.

    A local path is told apart by its transformer's `guidance_embeds` (dev has them)."""
    if tiny:
        return ModelDefaults("tiny", 2, 0.0, 64)
    name = model.lower()
    if "schnell" in name:
        return ModelDefaults("schnell", 4, 0.0, 1024)
    if "dev" in name or guidance_embeds:
        return ModelDefaults("dev", 28, 3.5, 1024)
    return ModelDefaults("schnell", 4, 0.0, 1024)
