"""Build the bundled server image on a host: Kamal's remote builder over our own connection.

The context (the server as it ships with this CLI, plus the optional `.build-extra/`) is
written as a tar to an anonymous temporary file (0600, no name on disk) and streamed on the
stdin of `docker build -` over the host's already-open connection (SSH, or a local pipe).
The image is tagged by a content hash of the context and the build arguments, so a host
that has the tag builds nothing, and a server code edit rebuilds only the layers after the
dependencies (server/Dockerfile separates them).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from intelligensi_deploy.bundle.context import (
    ContextFile,
    context_files,
    context_hash,
    find_context_dir,
    image_tag,
    write_tar,
)
from intelligensi_deploy.bundle.progress import BuildEvent, BuildProgress
from intelligensi_deploy.bundle.settings import BuildSettings
from intelligensi_deploy.diagnosis.build_failure import FAILED_HEADER, build_failure_finding
from intelligensi_deploy.diagnosis.diagnose import clean_lines
from intelligensi_deploy.errors import FluxdeployError

if TYPE_CHECKING:
    from intelligensi_deploy.remote.docker import Docker

HASH_LABEL = "fluxdeploy.context-hash"
BUILD_TIMEOUT_S = 3 * 3600.0


@dataclass(frozen=True)
class BuildPlan:
    """What will be built: the files, the build arguments, and the tag they hash to."""

    context_dir: Path
    files: tuple[ContextFile, ...]
    build_args: Mapping[str, str]
    full_hash: str
    platform: str | None = None

    @property
    def tag(self) -> str:
        return image_tag(self.full_hash)


@dataclass(frozen=True)
class BuildOutcome:
    tag: str
    built: bool                       # False: the host already had the tag
    progress: BuildProgress | None = None


class ImageBuildError(FluxdeployError):
    """`docker build` failed; `log` holds its last lines (no secrets: none go into a build)."""

    def __init__(self, message: str, *, log: Sequence[str], fix: str | None = None,
                 doc: str | None = None) -> None:
        super().__init__(message, fix=fix, doc=doc)
        self.log = list(log)


def plan_build(settings: BuildSettings, environ: Mapping[str, str] = os.environ,
               platform: str | None = None) -> BuildPlan:
    """Find the context, list its files and hash them with the build arguments (and the
    target platform, when one is asked for: another platform is another image)."""
    context_dir = find_context_dir(environ)
    files = tuple(context_files(context_dir, settings.extra_dir))
    args = settings.build_args()
    hashed = {**args, "--platform": platform} if platform else args
    return BuildPlan(context_dir, files, args, context_hash(files, hashed), platform)


def build_argv(plan: BuildPlan, *, tag: str | None = None) -> list[str]:
    """`docker build` arguments (after "docker") reading the context tar from stdin."""
    argv = ["build", "-t", tag or plan.tag]
    for key, value in sorted(plan.build_args.items()):
        argv += ["--build-arg", f"{key}={value}"]
    argv += ["--label", f"{HASH_LABEL}={plan.full_hash}",
             "--label", "org.opencontainers.image.title=flux-server",
             "--label", f"fluxdeploy.base={plan.build_args.get('BASE_IMAGE', '')}"]
    if plan.platform:
        argv += ["--platform", plan.platform]
    return [*argv, "-"]


def failure_log(tag: str, returncode: int, progress: BuildProgress) -> list[str]:
    """The saved record of a failed build: a header doctor recognises, then the last lines."""
    return [f"{FAILED_HEADER} for {tag} (exit {returncode})", *progress.tail]


def build_image(
    docker: Docker, plan: BuildPlan, *, on_event: Callable[[BuildEvent], None] | None = None,
    on_line: Callable[[str], None] | None = None, timeout: float = BUILD_TIMEOUT_S,
) -> BuildProgress:
    """Stream the context to `docker build -` on the docker's host; raise ImageBuildError."""
    progress = BuildProgress()

    def feed(line: str) -> None:
        event = progress.feed(line)
        if event is not None and on_event is not None:
            on_event(event)
        elif on_line is not None and line.strip():
            on_line(line)

    with tempfile.TemporaryFile() as tar:  # O_TMPFILE: 0600 and never has a name
        write_tar(plan.files, tar)
        tar.seek(0)
        result = docker.run_docker(build_argv(plan), stdin=tar,
                                   timeout=timeout, on_output=feed)
    if not result.ok:
        log = failure_log(plan.tag, result.returncode, progress)
        finding = build_failure_finding(clean_lines("\n".join(log)))
        cause = finding.title if finding else "see the last lines"
        raise ImageBuildError(
            f"docker build of the bundled server ({plan.tag}) failed on "
            f"{docker.host.label}: {cause}.",
            fix=finding.fix if finding else "Read the last lines above.",
            doc="image-build-failed",
            log=log,
        )
    return progress


class FailureLines(Protocol):
    """Where a failed build's last lines go (`deploy.reporter.Reporter` is one)."""

    def warn(self, message: str) -> None: ...
    def detail(self, line: str) -> None: ...


def show_failure(ui: FailureLines, exc: ImageBuildError, lines: int = 20) -> None:
    """The last lines of a failed build, on the reporter."""
    ui.warn(f"The image build failed. Last {min(lines, len(exc.log))} lines:")
    for line in exc.log[-lines:]:
        ui.detail(line)


def ensure_image(
    docker: Docker, plan: BuildPlan, *, on_event: Callable[[BuildEvent], None] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> BuildOutcome:
    """The plan's tag on the host: nothing to do when present, else build it."""
    if docker.image_exists(plan.tag):
        return BuildOutcome(plan.tag, built=False)
    progress = build_image(docker, plan, on_event=on_event, on_line=on_line)
    return BuildOutcome(plan.tag, built=True, progress=progress)
