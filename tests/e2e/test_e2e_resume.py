"""End to end on the sshd "VM" and on the local provider: a bundled deployment stopped (`docker stop`, as a reboot or a
tidy-up does) comes back as it was with a plain `fluxdeploy up` (issue 22 part 5).

The first `up` builds with `make demo`'s FLUXDEPLOY_BUILD_* overrides (offline: the local base
image and torch wheel); the second runs without them, as the README's own command does. It
must find the same image from the recorded build settings, keep the recorded tag, and start
the stopped container (`docker start`) instead of building again (which offline would fail
on the preset's own base image) or replacing it.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_e2e_bundled import (  # noqa: F401  (the `bundled` fixture, by name)
    BUILD_TIMEOUT,
    NAME,
    _check,
    bundled,
)
from tests.fixtures.docker_env import docker

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.timeout(1800)]


@pytest.mark.parametrize("where", ["vm", "local"])
def test_a_stopped_bundled_deployment_comes_back_with_a_plain_up(
        bundled, where: str) -> None:  # noqa: F811
    e2e, _ = bundled
    if where == "local":  # provider local: this machine's engine, no SSH
        preset = e2e.preset(provider="local", **{"lambda": None}, image="bundled",
                            server={"model": "tiny"}, env={})
    else:  # the sshd VM, launched through the fake Lambda
        preset = e2e.preset(image="bundled")
    _check(e2e.cli("up", "--name", NAME, "--preset", str(preset), timeout=BUILD_TIMEOUT))
    first = e2e.state(NAME)
    tag, container = first["image"], e2e.containers(NAME)[0]
    assert first["build_settings"]["resolved"]["base_image"] == \
        e2e.env["FLUXDEPLOY_BUILD_BASE_IMAGE"]
    docker("stop", container)

    for key in [k for k in e2e.env if k.startswith("FLUXDEPLOY_BUILD_")]:
        del e2e.env[key]  # the README's `fluxdeploy up --preset P`, without make's overrides
    doctor = e2e.cli("doctor", "--json")
    checks = {c["id"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["container"]["title"].startswith("Container is stopped (exit 0)")
    assert checks["image"]["status"] == "pass", checks["image"]  # the tag is recorded

    again = _check(e2e.cli("up", "--name", NAME, "--preset", str(preset)))
    assert "is stopped with this configuration: starting it (docker start" in again
    assert "streaming the context" not in again and "Replacing container" not in again
    assert f"Ready: deployment '{NAME}'" in again
    assert e2e.containers(NAME) == [container]  # the same container, started again
    after = e2e.state(NAME)
    assert after["image"] == tag and after["build_settings"] == first["build_settings"]
    assert after["phase"] == "ready"
