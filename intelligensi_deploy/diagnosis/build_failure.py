"""Why a `docker build` of the bundled image failed (pure): one `image-build-failed` finding.

The causes told apart, from the genuine texts of docker 20.10 / BuildKit and pip 24+ (each
reproduced on the build machine, see tests/unit/test_build_failure.py):

- base-registry: the engine cannot reach the registry of the FROM image
  (``Get "https://registry-1.docker.io/v2/": dial tcp: lookup ... no such host``);
- base-missing: the FROM image or tag does not exist (``pull access denied``,
  ``manifest unknown``, ``not found``);
- disk-full: ``no space left on device`` / ``[Errno 28]``;
- pip-resolution: pip finds no version that satisfies the pins (``No matching distribution``,
  ``ResolutionImpossible``);
- package-index: pip cannot reach PyPI or the torch index (retries, certificate errors).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from intelligensi_deploy.diagnosis.findings import Finding, make_finding

FAILED_HEADER = "fluxdeploy: docker build failed"
_BUILD_OUTPUT = re.compile(r"^Step \d+/\d+ : |^#\d+ \[|^Sending build context to Docker daemon|"
                           + re.escape(FAILED_HEADER))
_FAILURE = re.compile(r"returned a non-zero code: \d+|ERROR: failed to solve|failed to solve:|"
                      r"^ERROR \[|" + re.escape(FAILED_HEADER), re.IGNORECASE)


@dataclass(frozen=True)
class Cause:
    name: str
    pattern: re.Pattern[str]
    title: str
    fix: str


def _cause(name: str, regex: str, title: str, fix: str) -> Cause:
    return Cause(name, re.compile(regex, re.IGNORECASE), title, fix)


CAUSES: tuple[Cause, ...] = (
    _cause("disk-full", r"no space left on device|\[Errno 28\]",
           "The image build ran out of disk (no space left on device)",
           "Free disk on the host: `docker system prune` (old images and build cache), "
           "`df -h /var/lib/docker`; then `fluxdeploy up` again."),
    # before pip-resolution: without the index, pip also ends in "No matching distribution"
    _cause("package-index",
           r"Could not fetch URL|Max retries exceeded|NewConnectionError|"
           r"CERTIFICATE_VERIFY_FAILED|Temporary failure in name resolution",
           "pip could not reach the package index (PyPI or the torch index)",
           "Give the host outbound HTTPS to pypi.org (and the torch index), or a CA bundle "
           "in build.extra_dir (ca-certificates.crt) behind a TLS proxy."),
    _cause("pip-resolution",
           r"ResolutionImpossible|No matching distribution found for|"
           r"Could not find a version that satisfies the requirement",
           "pip found no versions that satisfy the build's requirements",
           "Check build.torch (a version that exists for the base image's Python, e.g. "
           "torch==2.13.0) and build.torch_index; the pip lines above name the package."),
    _cause("base-missing",
           r"pull access denied|repository does not exist|manifest unknown|"
           r"manifest for \S+ not found|: not found$",
           "The base image of the build does not exist (name or tag)",
           "Check build.base_image (default nvidia/cuda:12.8.1-runtime-ubuntu24.04); the "
           "host must be able to pull it, or have it locally."),
    _cause("base-registry",
           r"dial tcp|no such host|i/o timeout|TLS handshake timeout|network is unreachable|"
           r"connection refused|failed to resolve source metadata|failed to do request",
           "The host cannot reach the registry of the base image",
           "Give the host outbound HTTPS to the base image's registry (registry-1.docker.io "
           "for nvidia/cuda), or build.base_image an image already on the host."),
)


def looks_like_failed_build(lines: Sequence[str]) -> bool:
    """True for the output of a `docker build` that failed."""
    return any(_BUILD_OUTPUT.search(line) for line in lines) and \
        any(_FAILURE.search(line) or _cause_of(line) for line in lines)


def _cause_of(line: str) -> Cause | None:
    return next((c for c in CAUSES if c.pattern.search(line)), None)


def build_failure_finding(lines: Sequence[str]) -> Finding | None:
    """The `image-build-failed` finding for a failed build's output, cause named; else None."""
    if not looks_like_failed_build(lines):
        return None
    for cause in CAUSES:
        hits = [line.strip() for line in lines if cause.pattern.search(line)]
        if hits:
            return make_finding("image-build-failed", hits[-3:],
                                title=f"{cause.title} [{cause.name}]", fix=cause.fix)
    last = [line.strip() for line in lines if line.strip()][-3:]
    return make_finding("image-build-failed", last)
