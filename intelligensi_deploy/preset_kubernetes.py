"""A preset's `kubernetes:` section: what only a Kubernetes cluster needs to run the server.

`fluxdeploy k8s render` reads it (intelligensi_deploy/k8s/). Everything else (model, memory
plan, scale, exposure, ready_timeout) comes from the rest of the same preset. Pure: the model
and its validation only.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"
IMAGE_UID = 1000  # server/Dockerfile's APP_UID
# An extended resource name: a DNS subdomain prefix, a slash, and a name (kubernetes.io docs).
_RESOURCE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_QUANTITY = re.compile(r"^[1-9][0-9]*(Mi|Gi|Ti)$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class Toleration(BaseModel):
    """One pod toleration, as Kubernetes writes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class IngressSettings(BaseModel):
    """An Ingress with TLS in front of the Service (off unless written)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1, description="the DNS name clients use")
    tls_secret: str = Field(min_length=1, description="a kubernetes.io/tls Secret for host")
    class_name: str | None = Field(None, description="the IngressClass; default: the cluster's")


class KubernetesSection(BaseModel):
    """Namespace, storage, GPU resource, placement and image for `fluxdeploy k8s render`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str = Field("default", description="where every object is created")
    image: str | None = Field(None, description="the registry image pushed with `fluxdeploy "
                              "image build --push REF`; default: the preset's image")
    storage_class: str | None = Field(None, description="of the HF cache's volume claim; "
                                      "default: the cluster's default class")
    cache_size: str = Field("100Gi", description="the HF cache's volume claim")
    gpu_resource: str = Field(DEFAULT_GPU_RESOURCE, description="the GPU's extended resource")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    run_as_user: int = Field(IMAGE_UID, ge=1, description="the image's non-root UID")
    ingress: IngressSettings | None = Field(None, description="an Ingress with TLS; needs auth")
    disruption_budget: bool = Field(False, description="a PodDisruptionBudget: a node drain "
                                    "waits instead of evicting a loaded server")

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not _DNS_LABEL.match(value):
            raise ValueError("a namespace is a DNS label: lower-case letters, digits and '-', "
                             "at most 63, such as 'default' or 'flux'")
        return value

    @field_validator("gpu_resource", mode="before")
    @classmethod
    def _gpu_resource(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ValueError("the GPU resource name is missing: write the extended resource "
                             f"your GPU nodes advertise, such as {DEFAULT_GPU_RESOURCE} "
                             "(NVIDIA's device plugin) or amd.com/gpu")
        if not isinstance(value, str) or not _RESOURCE.match(value):
            raise ValueError("a GPU resource is an extended resource name DOMAIN/NAME, such "
                             f"as {DEFAULT_GPU_RESOURCE} or amd.com/gpu")
        return value

    @field_validator("cache_size")
    @classmethod
    def _quantity(cls, value: str) -> str:
        if not _QUANTITY.match(value):
            raise ValueError("write a size in Mi, Gi or Ti, such as 100Gi (FLUX.1's weights "
                             "take about 34 GB)")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(c.isspace() for c in value)):
            raise ValueError("an image reference such as ghcr.io/you/flux-server:1.0")
        return value
