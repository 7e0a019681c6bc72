"""A preset -> the files of `fluxdeploy k8s render`: one object per file, stable YAML.

Without `scale:` a Deployment, a Service and a PersistentVolumeClaim; with it a KubeRay
RayService and a Service for its endpoint. Keys are sorted and nothing depends on the clock,
so rendering twice gives the same bytes (tests/unit/test_k8s_golden.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from intelligensi_deploy.k8s import common, workload
from intelligensi_deploy.presets import Preset


@dataclass(frozen=True)
class Manifest:
    """One rendered object and the file it goes in."""

    filename: str
    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    def text(self, header: str) -> str:
        return header + yaml.safe_dump(self.obj, sort_keys=True, default_flow_style=False)


def render(preset: Preset, source: str, *, name: str | None = None,
           image: str | None = None) -> list[Manifest]:
    """Every object for `preset`, in apply order; K8sRenderError names what cannot render."""
    name = common.check_name(name or preset.name)
    chosen = common.resolve_image(preset, source, image)
    if preset.scale is not None:
        raise common.K8sRenderError(
            f"{source}: scale: a preset with scale: renders a KubeRay RayService, which this "
            "version does not render yet; allowed: a preset without scale:",
            fix="remove scale: to render one Deployment with one pod")
    return [Manifest("10-persistentvolumeclaim.yaml", workload.cache_claim(preset, name)),
            Manifest("20-deployment.yaml", workload.deployment(preset, name, chosen)),
            Manifest("30-service.yaml", workload.service(preset, name))]


def header(preset: Preset, name: str) -> str:
    """The comment atop every file: where it came from, and the Secret(s) to create first."""
    return (f"# Rendered by `fluxdeploy k8s render --preset {preset.name} --name {name}`.\n"
            f"# Create the Secret(s) first: `fluxdeploy k8s secret --preset {preset.name} "
            f"--name {name}` prints the kubectl line(s).\n")


def as_stream(manifests: list[Manifest], preset: Preset, name: str) -> str:
    """All objects as one multi-document YAML stream (for `kubectl apply -f -`)."""
    return header(preset, name) + "---\n".join(
        m.text("") for m in manifests)


def write_tree(manifests: list[Manifest], preset: Preset, name: str, out: Path) -> list[Path]:
    """Write one file per object under `out` (created); returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for manifest in manifests:
        path = out / manifest.filename
        path.write_text(manifest.text(header(preset, name)), encoding="utf-8")
        written.append(path)
    return written
