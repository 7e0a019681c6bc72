"""`up`'s bundled-image step on the host: reuse the content-hash tag, or build it there.

A failed build records its last lines next to the deployment's state file (0600, redacted:
`doctor` reads them back) and shows them; a good build removes that record.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from intelligensi_deploy.deploy import Reporter, Tracker
    from intelligensi_deploy.remote.docker import Docker
    from intelligensi_deploy.state import StateStore


def build_on_host(plan: Any, tracker: Tracker, docker: Docker, ui: Reporter) -> None:
    """The bundled image on the host: reuse its tag, or stream the context and build it."""
    from intelligensi_deploy.bundle import build

    log_path = build_log_path(tracker.store, tracker.dep.name)
    ui.step(f"Bundled server image {plan.tag} (content hash of the server and build args)")
    size = sum(f.path.stat().st_size for f in plan.files)
    try:
        if docker.image_exists(plan.tag):
            ui.detail(f"{docker.host.label} has {plan.tag}: nothing to build")
            log_path.unlink(missing_ok=True)
            return
        ui.detail(f"building on {docker.host.label}: streaming the context ({len(plan.files)} "
                  f"files, {size / 1e6:.1f} MB) to `docker build -` over the open connection")
        started = time.monotonic()
        progress = build.build_image(docker, plan, on_event=lambda e: ui.detail(e.describe()),
                                     on_line=ui.progress_line)
    except build.ImageBuildError as exc:
        write_private(log_path, "\n".join(exc.log) + "\n")
        # recorded (even for ssh/local, where nothing else exists yet): `doctor` finds the
        # deployment and its build log; `down` forgets a record that holds nothing
        tracker.record(phase="failed", image=plan.tag)
        build.show_failure(ui, exc)
        raise
    log_path.unlink(missing_ok=True)
    ui.detail(f"built {plan.tag} in {time.monotonic() - started:.0f} s: {progress.summary()}")


def build_log_path(store: StateStore, name: str) -> Path:
    """Where the last failed build of deployment `name` is recorded (for `doctor`)."""
    return store.root / f"{name}.build.log"


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600 from the start, redacted."""
    from intelligensi_deploy.redact import redact

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file was already there
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(redact(text))
