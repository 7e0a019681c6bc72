"""The `server.speed:` section of a preset: the FLUX server's speed options (compile, fp8,
fused QKV, step cache, warm sizes), passed to the container as FLUX_* variables.

`auto` lets the server's planner decide by GPU (server/flux_server/speed.py); only values
other than `auto` are passed on. Kept apart from presets.py so its sections merge easily.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

FP8_MIN_CAPABILITY = 8.9
_SIZE = re.compile(r"^(\d{2,4})x(\d{2,4})$")


def _switch(value: Any) -> Any:
    """YAML 1.1 reads `on`/`off` as booleans: take them back as the words."""
    if value is True:
        return "on"
    if value is False:
        return "off"
    return value


class SpeedSettings(BaseModel):
    """Speed options; each `auto` (the server decides by GPU), or forced."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    compile: Literal["auto", "off", "regional", "full"] = "auto"
    fp8: Literal["auto", "on", "off"] = "auto"
    fuse_qkv: Literal["auto", "on", "off"] = "auto"
    step_cache: Literal["auto", "off", "first-block", "taylorseer"] = "auto"
    cache_threshold: float | None = Field(None, ge=0.0, le=1.0)
    warm_sizes: list[str] | None = Field(
        None, description="WIDTHxHEIGHT sizes compiled and warmed before /ready")

    @field_validator("fp8", "fuse_qkv", "compile", "step_cache", mode="before")
    @classmethod
    def _words(cls, value: Any) -> Any:
        return _switch(value)

    @field_validator("warm_sizes")
    @classmethod
    def _sizes(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            match = _SIZE.match(str(item).lower())
            if not match or any(int(side) % 16 or int(side) < 64 for side in match.groups()):
                raise ValueError(f"warm size {item!r} is not WIDTHxHEIGHT with sides that are "
                                 "multiples of 16 from 64 (for example 1024x576)")
        return [s.lower() for s in value] if value is not None else None

    def container_env(self) -> dict[str, str]:
        """FLUX_* variables for the options that are not `auto`."""
        env: dict[str, str] = {}
        for name, value in (("FLUX_COMPILE", self.compile), ("FLUX_FP8", self.fp8),
                            ("FLUX_FUSE_QKV", self.fuse_qkv),
                            ("FLUX_STEP_CACHE", self.step_cache)):
            if value != "auto":
                env[name] = value
        if self.cache_threshold is not None:
            env["FLUX_CACHE_THRESHOLD"] = f"{self.cache_threshold:g}"
        if self.warm_sizes is not None:
            env["FLUX_WARM_SIZES"] = ",".join(self.warm_sizes)
        return env

    def check_gpu(self, instance_type: str, capability: float | None) -> None:
        """ValueError when fp8 is forced on a GPU without fp8 support."""
        if self.fp8 == "on" and capability is not None and capability < FP8_MIN_CAPABILITY:
            raise ValueError(
                f"speed.fp8 on needs compute capability >= 8.9; {instance_type} has "
                f"{capability}: use fp8 auto or off (see PLAYBOOK.md#fp8-unsupported)")
