"""Scale-out settings (FLUX_REPLICAS and friends), parsed purely and without importing Ray.

One replica (the default) is today's plain process. More than one replica, or autoscaling
up to more than one, runs the same pipeline code as a Ray Serve deployment (flux_server.cluster).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flux_server.config import SettingsError, number_from

GPU_RESOURCE = "GPU"


@dataclass(frozen=True)
class ScaleSettings:
    """How many pipeline replicas serve, and how Ray Serve scales and queues them."""

    min_replicas: int = 1
    max_replicas: int = 1
    target_ongoing_requests: float = 1.0
    max_ongoing_requests: int = 1  # per replica: the pipeline runs one generation at a time
    max_queued_requests: int = 16  # at the endpoint, beyond that: 429 + Retry-After
    min_ready: int = 1  # /ready answers 200 from this many ready replicas
    replica_resource: str = GPU_RESOURCE  # "GPU" in production; a custom resource in tests
    ray_address: str | None = None  # None: start a local Ray; "auto" or host:port: join one
    replica_cpus: float = 1.0
    serve_managed: bool = False  # KubeRay deploys the application (serve_app.build): join it

    @property
    def enabled(self) -> bool:
        """True when Ray Serve is needed (more than one replica at any time)."""
        return self.max_replicas > 1

    @property
    def autoscaling(self) -> bool:
        return self.max_replicas > self.min_replicas

    def deployment_options(self) -> dict:
        """Keyword arguments of Ray Serve's `Deployment.options()` for the pipeline replicas."""
        actor: dict[str, Any]
        if self.replica_resource == GPU_RESOURCE:
            actor = {"num_gpus": 1, "num_cpus": self.replica_cpus}
        else:
            actor = {"num_cpus": self.replica_cpus, "resources": {self.replica_resource: 1}}
        options: dict = {"ray_actor_options": actor,
                         "max_ongoing_requests": self.max_ongoing_requests,
                         "max_queued_requests": self.max_queued_requests}
        if self.autoscaling:
            options["autoscaling_config"] = {
                "min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                "initial_replicas": self.min_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
                "upscale_delay_s": 2.0, "downscale_delay_s": 60.0, "look_back_period_s": 10.0}
        else:
            options["num_replicas"] = self.max_replicas
        return options

    def public(self) -> dict:
        return {**self.__dict__, "enabled": self.enabled}


def scale_from_env(env: Mapping[str, str], queue_size: int = 16) -> ScaleSettings:
    """FLUX_REPLICAS (fixed count) or FLUX_MIN_REPLICAS / FLUX_MAX_REPLICAS (autoscaling),
    FLUX_TARGET_ONGOING_REQUESTS, FLUX_MAX_QUEUED_REQUESTS (default FLUX_QUEUE_SIZE),
    FLUX_MIN_READY (default the minimum), FLUX_REPLICA_RESOURCE, FLUX_RAY_ADDRESS,
    FLUX_SERVE_MANAGED (1: the application is deployed from a RayService's serveConfigV2)."""
    replicas = number_from(env, "FLUX_REPLICAS", int, 0, 1)
    min_default = replicas or 1
    min_replicas = number_from(env, "FLUX_MIN_REPLICAS", int, min_default, 1)
    max_replicas = number_from(env, "FLUX_MAX_REPLICAS", int, max(replicas, min_replicas), 1)
    if replicas and env.get("FLUX_MIN_REPLICAS", "").strip() and env.get(
            "FLUX_MAX_REPLICAS", "").strip():
        raise SettingsError("set FLUX_REPLICAS (a fixed count) or FLUX_MIN_REPLICAS and "
                            "FLUX_MAX_REPLICAS (autoscaling), not all three")
    if min_replicas > max_replicas:
        raise SettingsError(f"FLUX_MIN_REPLICAS={min_replicas} is above FLUX_MAX_REPLICAS="
                            f"{max_replicas}: lower the minimum or raise the maximum")
    min_ready = number_from(env, "FLUX_MIN_READY", int, min_replicas, 1)
    if min_ready > max_replicas:
        raise SettingsError(f"FLUX_MIN_READY={min_ready} can never be reached with "
                            f"FLUX_MAX_REPLICAS={max_replicas}: lower it")
    resource = env.get("FLUX_REPLICA_RESOURCE", "").strip() or GPU_RESOURCE
    if not resource.replace("_", "").replace("-", "").isalnum():
        raise SettingsError(f"FLUX_REPLICA_RESOURCE={resource!r} is not a Ray resource name "
                            "(letters, digits, - and _)")
    return ScaleSettings(
        min_replicas=min_replicas, max_replicas=max_replicas,
        target_ongoing_requests=number_from(env, "FLUX_TARGET_ONGOING_REQUESTS", float, 1.0,
                                            0.1),
        max_ongoing_requests=number_from(env, "FLUX_MAX_ONGOING_REQUESTS", int, 1, 1),
        max_queued_requests=number_from(env, "FLUX_MAX_QUEUED_REQUESTS", int, queue_size,
                                        1),
        min_ready=min_ready, replica_resource=resource,
        ray_address=env.get("FLUX_RAY_ADDRESS", "").strip() or None,
        replica_cpus=number_from(env, "FLUX_REPLICA_CPUS", float, 1.0, 0.0),
        serve_managed=env.get("FLUX_SERVE_MANAGED", "").strip() == "1")
