"""What every rendered object shares: names, labels, the image check, the error type."""

from __future__ import annotations

import re

from intelligensi_deploy import names
from intelligensi_deploy.bundle.settings import BUNDLED
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.preset_kubernetes import KubernetesSection
from intelligensi_deploy.presets import Preset

HTTP_PORT = 8000  # the server's port in the container (container_plan.CONTAINER_PORT)
HF_CACHE_MOUNT = "/data/hf"  # HF_HOME in server/Dockerfile
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")


class K8sRenderError(FluxdeployError):
    """A preset (or flag) that cannot be rendered for Kubernetes: file, field, value, allowed."""

    exit_code = 2


def section(preset: Preset) -> KubernetesSection:
    """The preset's `kubernetes:` section, or its defaults."""
    return preset.kubernetes or KubernetesSection()


def check_name(name: str) -> str:
    """A deployment name usable in every object name (a DNS label once prefixed)."""
    if not _NAME.match(name):
        raise K8sRenderError(
            f"--name: {name!r} cannot name Kubernetes objects; allowed: lower-case letters, "
            "digits and '-', starting with a letter or digit, at most 41 characters",
            fix="pass --name like flux-dev")
    return name


def resolve_image(preset: Preset, source: str, image: str | None) -> str:
    """The registry image to run: --image, else kubernetes.image, else the preset's image.

    `bundled` is refused: a cluster cannot build the image on a node."""
    chosen = image or section(preset).image or preset.image
    field = ("--image" if image else "kubernetes.image" if section(preset).image
             else "image")
    if chosen == BUNDLED:
        raise K8sRenderError(
            f"{source}: {field}: {chosen!r} cannot run on Kubernetes: a cluster pulls images "
            "from a registry and cannot build one on a node; allowed: a registry image "
            "reference such as ghcr.io/you/flux-server:1.0",
            fix=f"publish the bundled server with `fluxdeploy image build --preset "
                f"{preset.name} --push ghcr.io/YOU/flux-server:TAG`, then set "
                "`kubernetes: {image: ghcr.io/YOU/flux-server:TAG}` in the preset or pass "
                "--image ghcr.io/YOU/flux-server:TAG")
    return chosen


def object_name(name: str) -> str:
    """The Deployment's, Service's and RayService's name."""
    return names.container_name(name)


def hf_token_secret(name: str) -> str:
    return f"{names.PREFIX}-{name}-hf-token"


def api_keys_secret(name: str) -> str:
    return f"{names.PREFIX}-{name}-api-keys"


def cache_claim(name: str) -> str:
    return f"{names.PREFIX}-{name}-hf-cache"


def labels(preset: Preset, name: str) -> dict[str, str]:
    """The labels on every object and pod (the selector uses the first two)."""
    return {"app.kubernetes.io/name": "flux-server", "app.kubernetes.io/instance": name,
            "app.kubernetes.io/managed-by": "fluxdeploy", names.PRESET_LABEL: preset.name}


def selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "flux-server", "app.kubernetes.io/instance": name}


def metadata(preset: Preset, name: str, object_name: str) -> dict[str, object]:
    return {"name": object_name, "namespace": section(preset).namespace,
            "labels": labels(preset, name)}
