"""The preset's `build:` section (how the bundled image is built) and its overrides.

Precedence, for every key: `--build KEY=VALUE` flag > `FLUXDEPLOY_BUILD_<KEY>` environment
variable > the preset's `build:` > the built-in default. Pure: no I/O beyond reading the
mapping it is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from intelligensi_deploy.errors import FluxdeployError

BUNDLED = "bundled"
ENV_PREFIX = "FLUXDEPLOY_BUILD_"
DEFAULT_BASE_IMAGE = "nvidia/cuda:12.8.1-runtime-ubuntu24.04"
DEFAULT_TORCH = "torch==2.13.0"


class BuildSettings(BaseModel):
    """Build arguments of server/Dockerfile for `image: bundled` (see PLAYBOOK.md#image-build)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_image: str = Field(DEFAULT_BASE_IMAGE, min_length=1,
                            description="FROM image; the CUDA runtime for GPU hosts")
    torch: str = Field(DEFAULT_TORCH, min_length=1, description="pip requirement for torch")
    torch_index: str | None = Field(None, description="extra pip index for torch (e.g. cu128)")
    extras: list[str] = Field(default_factory=lambda: ["quant"],
                              description="optional-dependency groups of the server")
    extra_dir: str | None = Field(None, description="local folder sent as .build-extra/ "
                                  "(CA bundle, wheels/, constraints.txt)")

    @field_validator("torch")
    @classmethod
    def _torch_is_torch(cls, value: str) -> str:
        if not value.strip().lower().startswith("torch"):
            raise ValueError("must be a pip requirement for torch, e.g. torch==2.13.0")
        return value.strip()

    @field_validator("extras")
    @classmethod
    def _extras_names(cls, value: list[str]) -> list[str]:
        bad = [x for x in value if not x.replace("-", "").replace("_", "").isalnum()]
        if bad:
            raise ValueError(f"not extra names: {bad}; use names such as quant")
        return value

    def build_args(self) -> dict[str, str]:
        """The `--build-arg`s of server/Dockerfile (non-secret by construction)."""
        return {
            "BASE_IMAGE": self.base_image,
            "TORCH_SPEC": self.torch,
            "TORCH_INDEX_URL": self.torch_index or "",
            "SERVER_EXTRAS": " ".join(self.extras),
        }


KEYS = tuple(BuildSettings.model_fields)


def _parse_value(key: str, raw: str) -> Any:
    """A flag or environment text as the field's value; empty text clears optional keys."""
    raw = raw.strip()
    if key == "extras":
        return [x for x in raw.replace(",", " ").split() if x]
    if key in ("torch_index", "extra_dir"):
        return raw or None
    return raw


def parse_flags(flags: Sequence[str]) -> dict[str, str]:
    """`KEY=VALUE` texts (`--build`) as a mapping; dashes in keys are accepted."""
    parsed: dict[str, str] = {}
    for flag in flags:
        key, sep, value = flag.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in KEYS:
            raise FluxdeployError(
                f"--build {flag!r}: expected KEY=VALUE with KEY one of {', '.join(KEYS)}.",
                fix="e.g. --build base_image=fluxdeploy/base-cpu:bookworm --build extras=",
                doc="image-build",
            )
        parsed[key] = value
    return parsed


def resolve(preset_build: BuildSettings, flags: Mapping[str, str],
            environ: Mapping[str, str]) -> BuildSettings:
    """The settings in effect: flag > environment > preset > default, key by key."""
    update: dict[str, Any] = {}
    for key in KEYS:
        if key in flags:
            update[key] = _parse_value(key, flags[key])
        elif ENV_PREFIX + key.upper() in environ:
            update[key] = _parse_value(key, environ[ENV_PREFIX + key.upper()])
    if not update:
        return preset_build
    try:
        return BuildSettings.model_validate({**preset_build.model_dump(), **update})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise FluxdeployError(
            f"Invalid build override ({problems}).",
            fix=f"Check the --build flags and the {ENV_PREFIX}* variables.",
            doc="image-build",
        ) from None


def resume(preset_build: BuildSettings, recorded: Mapping[str, Any] | None) -> BuildSettings:
    """The preset's build settings with a resumed deployment's recorded ones laid over them.

    `recorded` is what `up` recorded (`record_of`): the settings it built with and the
    preset's own section then. A key keeps its recorded value while the preset's value for it
    is unchanged, so an `up` without the flags or FLUXDEPLOY_BUILD_* variables of the first
    one (`make demo`'s) finds the same image; `resolve` then lays this `up`'s own flags and
    variables over the result, and a preset edit wins as it should."""
    if not recorded:
        return preset_build
    then = recorded.get("preset") or {}
    used = recorded.get("resolved") or {}
    now = preset_build.model_dump()
    kept = {k: used[k] for k in KEYS if k in used and k in then and now.get(k) == then[k]}
    if not kept:
        return preset_build
    try:
        return BuildSettings.model_validate({**now, **kept})
    except ValidationError:
        return preset_build  # a record from another version: the preset decides


def record_of(preset_build: BuildSettings, resolved: BuildSettings) -> dict[str, Any]:
    """What a deployment records of its build: the settings in effect and the preset's."""
    return {"resolved": resolved.model_dump(), "preset": preset_build.model_dump()}


def sources(preset_build: BuildSettings, flags: Mapping[str, str],
            environ: Mapping[str, str]) -> dict[str, str]:
    """Where each key's value comes from: flag, env, preset or default (for `presets show`)."""
    where: dict[str, str] = {}
    for key in KEYS:
        if key in flags:
            where[key] = "flag"
        elif ENV_PREFIX + key.upper() in environ:
            where[key] = f"env {ENV_PREFIX + key.upper()}"
        elif key in preset_build.model_fields_set:
            where[key] = "preset"
        else:
            where[key] = "default"
    return where
