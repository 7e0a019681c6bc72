"""doctor's `image` check for `image: bundled`: did the build on the host succeed? READ-ONLY.

Evidence: the record `up` keeps of a failed build (its last lines, next to the state file),
then `docker image inspect` of the recorded tag on the host.
"""

from __future__ import annotations

from intelligensi_deploy.diagnosis.build_failure import build_failure_finding
from intelligensi_deploy.diagnosis.diagnose import clean_lines
from intelligensi_deploy.diagnosis.findings import make_finding
from intelligensi_deploy.doctor.check_types import CheckResult, DoctorDeps, Facts, make_result
from intelligensi_deploy.remote.docker_args import image_inspect_args

TITLE = "Bundled image built on the host"


def not_bundled(deps: DoctorDeps, facts: Facts) -> str | None:
    dep = deps.deployment
    if getattr(dep, "image_source", None) == "bundled":
        return None
    return f"the image is pulled ({dep.image or 'registry'}), not built on the host"


def check_bundled_image(deps: DoctorDeps, facts: Facts) -> CheckResult:
    """`image: bundled`: the build on the host succeeded (or no build was recorded yet)."""
    log = deps.build_log() if deps.build_log else None
    if log:
        lines = clean_lines(log)
        finding = build_failure_finding(lines) or make_finding("image-build-failed", lines[-3:])
        evidence = [finding.title, *[f"  {line}" for line in lines[-12:]]]
        return make_result("image", f"Image build failed: {finding.title}", "fail", evidence,
                           fix=finding.fix, doc="image-build-failed", findings=[finding])
    tag = deps.deployment.image
    if not tag or tag == "bundled":
        return make_result("image", TITLE, "warn", ["no build recorded yet"],
                           fix="Run `fluxdeploy up` (it builds the image on the host).",
                           doc="image-build")
    result = facts.need_docker().run_docker(image_inspect_args(tag), timeout=30)
    if result.ok:
        return make_result("image", TITLE, "pass", [f"{tag} is on the host (built, not pulled)"])
    return make_result("image", TITLE, "warn", [f"{tag} is not on the host"],
                       fix="Run `fluxdeploy up` again: it rebuilds the image (cached layers are "
                       "reused).", doc="image-build")
