"""A preset's `scale:` section: replicas of the pipeline on Ray Serve, over one or more VMs.

Without it (or with one replica in all) the server is today's single process. With more, the
container runs the same pipeline as a Ray Serve deployment, one replica per GPU, behind one
endpoint on node 1 (the Ray head). Pure: validation and the container's environment only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ScaleSection(BaseModel):
    """How many replicas, where, and what the one endpoint exposes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nodes: int = Field(1, ge=1, le=16, description="VMs in the cluster, all in one region")
    replicas_per_node: int | None = Field(None, ge=1, le=8,
                                          description="default: one per GPU of the type")
    min_replicas: int | None = Field(None, ge=1, description="default: every replica")
    max_replicas: int | None = Field(None, ge=1, description="default: every replica")
    target_ongoing_requests: float = Field(1.0, gt=0, le=64)
    max_queued_requests: int | None = Field(None, ge=1, le=4096,
                                            description="default: server.queue_size")
    min_ready: int | None = Field(None, ge=1, description="default: min_replicas")
    endpoint: Literal["serving-port"] = Field(
        "serving-port", description="only the serving port follows `exposure`; Ray's ports "
        "open to the cluster's own nodes only, the Ray dashboard stays on loopback")

    @model_validator(mode="after")
    def _ordered(self) -> ScaleSection:
        if (self.min_replicas is not None and self.max_replicas is not None
                and self.min_replicas > self.max_replicas):
            raise ValueError(f"min_replicas ({self.min_replicas}) is above max_replicas "
                             f"({self.max_replicas}): lower the minimum or raise the maximum")
        return self

    def per_node(self, gpus_per_node: int) -> int:
        return self.replicas_per_node or gpus_per_node

    def bounds(self, gpus_per_node: int) -> tuple[int, int, int]:
        """(min_replicas, max_replicas, min_ready) with the defaults filled in."""
        total = self.nodes * self.per_node(gpus_per_node)
        high = self.max_replicas or total
        low = self.min_replicas or min(high, total)
        return low, high, self.min_ready or low

    def container_env(self, gpus_per_node: int, queue_size: int) -> dict[str, str]:
        """FLUX_* variables for the server (scale_config.scale_from_env reads them)."""
        low, high, ready = self.bounds(gpus_per_node)
        env = {"FLUX_MIN_REPLICAS": str(low), "FLUX_MAX_REPLICAS": str(high),
               "FLUX_MIN_READY": str(ready),
               "FLUX_TARGET_ONGOING_REQUESTS": f"{self.target_ongoing_requests:g}",
               "FLUX_MAX_QUEUED_REQUESTS": str(self.max_queued_requests or queue_size)}
        if self.nodes > 1:
            env["FLUX_RAY_ADDRESS"] = "auto"  # join the head started in the container
        return env
