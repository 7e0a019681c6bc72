"""`fluxdeploy image build [--push REF]`: the bundled image on the local engine, then pushed.

Same context, build arguments and tag as `up` (fluxdeploy/flux-server:<hash12>); the push
logs in with `up`'s login path (GHCR_TOKEN on `--password-stdin`, never argv).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from intelligensi_deploy.bundle.build import ImageBuildError, ensure_image, plan_build, show_failure
from intelligensi_deploy.bundle.settings import BuildSettings, resolve
from intelligensi_deploy.deploy.reporter import Reporter
from intelligensi_deploy.deploy.steps import registry_login
from intelligensi_deploy.presets import Preset
from intelligensi_deploy.remote.docker import Docker
from intelligensi_deploy.remote.local_host import LocalHost


def build_and_push(preset: Preset | None, flags: Mapping[str, str], *, ui: Reporter,
                   push: str | None = None, platform: str | None = None,
                   environ: Mapping[str, str] = os.environ) -> str:
    """Build (unless the tag exists) and optionally push; returns the reference to use.

    `preset` None: the built-in build settings (the production CUDA image).
    """
    docker = Docker(LocalHost())
    settings = preset.build if preset is not None else BuildSettings()
    plan = plan_build(resolve(settings, flags, environ), environ, platform=platform)
    ui.step(f"Bundled server image {plan.tag} on the local engine "
            f"(base {plan.build_args['BASE_IMAGE']})")
    try:
        outcome = ensure_image(docker, plan, on_event=lambda e: ui.detail(e.describe()),
                               on_line=ui.progress_line)
    except ImageBuildError as exc:
        show_failure(ui, exc)
        raise
    if outcome.built and outcome.progress is not None:
        ui.detail(f"built {plan.tag}: {outcome.progress.summary()}")
    else:
        ui.detail(f"{plan.tag} is already on this engine: nothing to build")
    if not push:
        return plan.tag
    docker.tag(plan.tag, push)
    registry_login(push, docker, ui, environ, preset.registry_username if preset else None)
    ui.step(f"Pushing {push}")
    docker.push(push, on_output=ui.detail)
    return push
