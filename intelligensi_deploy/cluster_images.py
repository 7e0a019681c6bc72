"""A cluster's image on each node (pulled, or the bundled one built there), run for all nodes
at once by cluster_up; each node's lines say which node they are about."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from intelligensi_deploy.bundle.build import BuildPlan
    from intelligensi_deploy.deploy import Reporter, Tracker
    from intelligensi_deploy.health import ReadyStatus
    from intelligensi_deploy.presets import Preset
    from intelligensi_deploy.remote.docker import Docker


class NodeReporter:
    """A Reporter whose lines say which node they are about (images run on all at once)."""

    def __init__(self, ui: Reporter, index: int) -> None:
        self.ui, self.index, self.prefix = ui, index, f"Node {index}: "

    def step(self, message: str) -> None:
        self.ui.step(self.prefix + message)

    def detail(self, line: str) -> None:
        self.ui.detail(f"node {self.index}: {line}")

    def warn(self, message: str) -> None:
        self.ui.warn(self.prefix + message)

    def ready_status(self, status: ReadyStatus, elapsed: float) -> None:
        self.ui.ready_status(status, elapsed)

    def progress_line(self, line: str) -> None:
        self.ui.progress_line(self.prefix + line)


def image_on_node(preset: Preset, plan: BuildPlan | None, tracker: Tracker, docker: Docker, ui: Reporter,
                   environ: Mapping[str, str]) -> None:
    """The bundled image built on the node (`plan`), or the preset's image pulled there."""
    if plan is not None:
        from intelligensi_deploy.bundle.on_host import build_on_host

        build_on_host(plan, tracker, docker, ui)
    else:
        from intelligensi_deploy.deploy import pull_image

        pull_image(preset, docker, ui, environ)
