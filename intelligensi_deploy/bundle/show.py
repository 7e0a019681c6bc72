"""What `presets show` says about a preset's image: which path it takes, and the tag."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from intelligensi_deploy.bundle.build import plan_build
from intelligensi_deploy.bundle.settings import resolve, sources
from intelligensi_deploy.errors import FluxdeployError

if TYPE_CHECKING:
    from intelligensi_deploy.presets import Preset


def image_path_lines(preset: Preset, environ: Mapping[str, str] = os.environ) -> list[str]:
    """Comment lines: pull path, or build path with the tag and each build key's source."""
    if not preset.bundled:
        pull = f"# image path: pull {preset.image} on the host (login when GHCR_TOKEN is set)"
        return [pull]
    settings = resolve(preset.build, {}, environ)
    try:
        tag = plan_build(settings, environ).tag
    except FluxdeployError as exc:
        tag = f"(unknown: {exc.message})"
    head = f"# image path: bundled: built on the host as {tag} (no registry); build settings:"
    lines = [head]
    for key, where in sources(preset.build, {}, environ).items():
        lines.append(f"#   {key}: {getattr(settings, key)!r}  ({where})")
    return lines
