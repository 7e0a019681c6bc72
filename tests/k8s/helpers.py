"""Shared by the Kubernetes tests: render a shipped preset, validate offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate

from intelligensi_deploy.k8s.render import Manifest, render
from intelligensi_deploy.preset_paths import SHIPPED_PRESETS_DIR
from intelligensi_deploy.presets import Preset, load_preset, parse_preset

IMAGE = "ghcr.io/acme/flux-server:1.0"
K8S_VERSIONS = ("1.30", "1.33")
LAMBDA_PRESETS = sorted(p.stem for p in SHIPPED_PRESETS_DIR.glob("lambda-*.yaml"))


def shipped(name: str) -> tuple[Preset, str]:
    return load_preset(name), str(SHIPPED_PRESETS_DIR / f"{name}.yaml")


def render_shipped(name: str, image: str = IMAGE) -> list[Manifest]:
    preset, source = shipped(name)
    return render(preset, source, image=image)


def preset_from(text: str, tmp_path: Path) -> tuple[Preset, str]:
    path = tmp_path / "team.yaml"
    path.write_text(text, encoding="utf-8")
    return parse_preset(text, source=str(path)), str(path)


def validate_core(obj: dict[str, Any], version: str) -> None:
    """kubernetes-validate --strict (unknown fields refused) against one Kubernetes version."""
    kubernetes_validate.validate(obj, version, strict=True)


def by_kind(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    return {m.kind: m.obj for m in manifests}


TEAM = """
name: team
provider: ssh
ssh: {host: 10.0.0.5}
image: ghcr.io/acme/flux-server:2.0
server: {model: black-forest-labs/FLUX.1-schnell, memory: gpu}
ready_timeout: 905
"""
RENDERABLE = LAMBDA_PRESETS  # with scale: a RayService (test_k8s_rayservice.py)


def is_core(manifest: Manifest) -> bool:
    """A kind whose schema Kubernetes itself publishes (not a custom resource)."""
    return not manifest.obj["apiVersion"].startswith("ray.io/")
