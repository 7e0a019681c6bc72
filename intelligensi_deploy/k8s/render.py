"""A preset -> the files of `fluxdeploy k8s render`: one object per file, stable YAML.

Without `scale:` a Deployment, a Service and a PersistentVolumeClaim; with it a KubeRay
RayService and a Service for its endpoint. Keys are sorted and nothing depends on the clock,
so rendering twice gives the same bytes (tests/k8s/test_k8s_golden.py).
"""

from __future__ import annotations

from pathlib import Path

from intelligensi_deploy.k8s import common, extras, rayservice, workload
from intelligensi_deploy.k8s.render_types import Manifest
from intelligensi_deploy.presets import Preset


def render(preset: Preset, source: str, *, name: str | None = None,
           image: str | None = None) -> list[Manifest]:
    """Every object for `preset`, in apply order; K8sRenderError names what cannot render."""
    name = common.check_name(name or preset.name)
    chosen = common.resolve_image(preset, source, image)
    if preset.scale is not None and preset.scale.bounds(_gpus(preset))[1] > 1:
        found = rayservice.manifests(preset, name, chosen)
        endpoint = {**common.selector(name), **rayservice.ENDPOINT_LABEL}
    else:
        found = [Manifest("10-persistentvolumeclaim.yaml", workload.cache_claim(preset, name)),
                 Manifest("20-deployment.yaml", workload.deployment(preset, name, chosen)),
                 Manifest("30-service.yaml", workload.service(preset, name))]
        endpoint = common.selector(name)
    optional = [("40-ingress.yaml", extras.ingress(preset, name, source)),
                ("50-poddisruptionbudget.yaml", extras.disruption_budget(
                    preset, name, {"matchLabels": endpoint}, 1))]
    return found + [Manifest(filename, obj) for filename, obj in optional if obj is not None]


def examples(manifests: list[Manifest], preset: Preset, name: str) -> dict[str, str]:
    """Files written beside the objects but never applied (`kubectl apply -f DIR` reads only
    .yaml, .yml and .json): the HPA of a plain Deployment, commented, with its reasons."""
    if not any(m.kind == "Deployment" for m in manifests):
        return {}
    return {"hpa.yaml.example": extras.autoscaler_example(preset, name)}


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
    for filename, text in examples(manifests, preset, name).items():
        (out / filename).write_text(text, encoding="utf-8")
        written.append(out / filename)
    return written


def _gpus(preset: Preset) -> int:
    """GPUs per machine, as check_scale counts them."""
    if preset.lambda_ is not None:
        return preset.lambda_.gpu_count()
    return (preset.scale.replicas_per_node if preset.scale else None) or 1
