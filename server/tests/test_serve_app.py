"""serve_app: the replicas' application is built by the same code on VMs (flux_server.cluster)
and from a RayService's serveConfigV2 (`flux_server.serve_app:build`, from FLUX_* variables)."""

from __future__ import annotations

import pytest

pytest.importorskip("ray", reason="needs the server's `scale` extra (ray[serve])")

from flux_server import serve_app
from flux_server.config import settings_from_env
from flux_server.scale_config import scale_from_env

ENV = {"FLUX_MODEL": "black-forest-labs/FLUX.1-schnell", "FLUX_MIN_REPLICAS": "2",
       "FLUX_MAX_REPLICAS": "3", "FLUX_TARGET_ONGOING_REQUESTS": "1.5",
       "FLUX_MAX_QUEUED_REQUESTS": "32", "FLUX_SERVE_MANAGED": "1"}


def _config(app) -> tuple:
    deployment = app._bound_deployment  # Ray 2.60's Application -> its Deployment
    config = deployment._deployment_config
    return (deployment.name, deployment.ray_actor_options, config.max_ongoing_requests,
            config.max_queued_requests, config.num_replicas,
            config.autoscaling_config and config.autoscaling_config.model_dump())


def test_builder_makes_the_vm_paths_application_from_the_environment(monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    boards = []
    monkeypatch.setattr(serve_app, "ready_board", lambda **kw: boards.append(kw))
    built = serve_app.build({})
    settings = settings_from_env(ENV)
    scale = scale_from_env(ENV, settings.queue_size)
    assert scale.serve_managed and scale.min_replicas == 2 and scale.max_replicas == 3
    assert _config(built) == _config(serve_app.flux_application(settings, scale))
    name, actor, ongoing, queued, _, autoscaling = _config(built)
    options = scale.deployment_options()
    assert name == serve_app.DEPLOYMENT_NAME and actor == options["ray_actor_options"]
    assert (ongoing, queued) == (1, 32)
    assert (autoscaling["min_replicas"], autoscaling["max_replicas"],
            autoscaling["target_ongoing_requests"]) == (2, 3, 1.5)
    assert built._bound_deployment._replica_config.init_args[0].model == ENV["FLUX_MODEL"]
    assert boards == [{"detached": True}]  # outlives the build task; replicas look it up


def test_fixed_count_builds_num_replicas(monkeypatch):
    monkeypatch.setenv("FLUX_REPLICAS", "4")
    monkeypatch.setattr(serve_app, "ready_board", lambda **kw: None)
    _, _, _, _, replicas, autoscaling = _config(serve_app.build())
    assert replicas == 4 and autoscaling is None
