"""The replicas' Ray Serve application, built one way for both places it runs.

On VMs, flux_server.cluster deploys it itself (serve.run_many). On Kubernetes, KubeRay deploys
it from a RayService's serveConfigV2, whose import_path is `flux_server.serve_app:build`: the
same application from the same FLUX_* variables, while the endpoint's process only joins it
(FLUX_SERVE_MANAGED=1). Imported only with scale (Ray at module level).
"""

from __future__ import annotations

import os
from typing import Any

import ray
from ray import serve

from flux_server.config import Settings, settings_from_env
from flux_server.replica import BOARD_NAME, NAMESPACE, FluxReplica, ReadyBoard
from flux_server.scale_config import ScaleSettings, scale_from_env

APP_NAME = "flux"
DEPLOYMENT_NAME = "FluxReplica"
HEAD_RESOURCE = "node:__internal_head__"


def flux_application(settings: Settings, scale: ScaleSettings) -> Any:
    """The pipeline replicas as a Serve application (not deployed yet)."""
    deployment = serve.deployment(name=DEPLOYMENT_NAME)(FluxReplica).options(
        **scale.deployment_options())
    return deployment.bind(settings)


def ready_board(*, detached: bool) -> Any:
    """The ReadyBoard actor the replicas report to, on the head node (created once).
    `detached`: it outlives the process that made it (serveConfigV2's build task)."""
    options: dict[str, Any] = {"name": BOARD_NAME, "namespace": NAMESPACE,
                               "get_if_exists": True, "num_cpus": 0,
                               "resources": {HEAD_RESOURCE: 0.001}}
    if detached:
        options["lifetime"] = "detached"
    return ray.remote(ReadyBoard).options(**options).remote()


def build(args: dict | None = None) -> Any:
    """serveConfigV2's application builder: settings and scale from the environment (the
    Ray containers' FLUX_* variables and the application's runtime_env), as on a VM."""
    settings = settings_from_env()
    scale = scale_from_env(os.environ, settings.queue_size)
    ready_board(detached=True)  # the replicas look it up in their constructor
    return flux_application(settings, scale)
