"""`fluxdeploy image build --push REF` against the real registry fixture (distribution v2 with
htpasswd): the same context and tag as `up`, the login through `up`'s path with the token on
stdin (never argv, never printed), and a refused login named as a registry problem."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import ArgvSampler
from tests.e2e.test_e2e_bundled import build_env
from tests.fixtures.docker_env import (  # noqa: F401  (pytest fixtures, imported by name)
    Registry,
    docker,
    docker_engine,
    registry,
    server_image,
)

pytestmark = [pytest.mark.docker]


def cli_env(tmp_path: Path, reg: Registry, password: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLUXDEPLOY_", "HF_", "GHCR_"))}
    overrides = build_env(Path("/unused"))
    del overrides["FLUXDEPLOY_SERVER_CONTEXT"]   # the checkout's server, as `up` takes it
    config = tmp_path / "docker-config"
    config.mkdir(exist_ok=True)
    env.update(overrides, GHCR_TOKEN=password, GHCR_USERNAME=reg.username,
               DOCKER_CONFIG=str(config), FLUXDEPLOY_HOME=str(tmp_path / "home"),
               COLUMNS="200")
    return env


def fluxdeploy(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intelligensi_deploy", *args], env=env,
                          capture_output=True, text=True, timeout=1500, check=False)


def registry_tags(reg: Registry, repo: str) -> list[str]:
    request = urllib.request.Request(f"{reg.url}/v2/{repo}/tags/list")
    auth = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
    request.add_header("Authorization", f"Basic {auth}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response).get("tags") or []


def test_image_build_push_logs_in_with_the_token_on_stdin(
        tmp_path: Path, registry: Registry) -> None:  # noqa: F811
    ref = f"{registry.host}/flux-server-bundled:push-test"
    env = cli_env(tmp_path, registry, registry.password)
    try:
        with ArgvSampler() as sampler:
            result = fluxdeploy("image", "build", "--push", ref, env=env)
        check_push(result, sampler, registry, ref)
    finally:
        docker("rmi", ref, check=False)


def check_push(result: subprocess.CompletedProcess[str], sampler: ArgvSampler,
               registry: Registry, ref: str) -> None:  # noqa: F811
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"Logging in to {registry.host} as {registry.username} (token on stdin)" in output
    assert registry.password not in output
    assert not any(registry.password in sample for sample in sampler.samples)
    assert result.stdout.strip().splitlines()[-1] == ref
    assert "push-test" in registry_tags(registry, "flux-server-bundled")
    # the pushed image is the bundled one, tagged by the same content hash as `up` uses
    tag = next(line.split()[4] for line in output.splitlines()
               if line.startswith("→ Bundled server image"))
    ids = {docker("image", "inspect", "-f", "{{.Id}}", name).stdout.strip() for name in (tag, ref)}
    assert len(ids) == 1
    label = docker("image", "inspect", "-f", '{{index .Config.Labels "fluxdeploy.context-hash"}}',
                   ref).stdout.strip()
    assert tag.endswith(label[:12])


def test_a_refused_login_is_a_registry_problem_and_the_token_stays_hidden(
        tmp_path: Path, registry: Registry) -> None:  # noqa: F811
    wrong = "wrong-password-0123456789"
    env = cli_env(tmp_path, registry, wrong)
    result = fluxdeploy("image", "build", "--push", f"{registry.host}/flux-server-bundled:x",
                        env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "401 Unauthorized" in output and "GHCR_TOKEN" in output
    assert wrong not in output
    docker("rmi", f"{registry.host}/flux-server-bundled:x", check=False)


def test_sigterm_during_a_build_stops_it_promptly(tmp_path: Path, server_image: str) -> None:  # noqa: F811
    """A long build ends on SIGTERM: a new pyproject.toml (a comment line) makes the
    dependency install run for real, and the signal comes while it does."""
    import signal
    import time
    import uuid

    from tests.e2e.test_e2e_bundled import server_copy

    ctx = server_copy(tmp_path)
    with open(ctx / "pyproject.toml", "a", encoding="utf-8") as handle:
        handle.write(f"# sigterm test {uuid.uuid4().hex}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXDEPLOY_")}
    env.update(build_env(ctx), COLUMNS="200", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "intelligensi_deploy", "image", "build"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        for line in proc.stdout:  # wait until the build is really running on the engine
            seen.append(line)
            after_deps_copy = any("COPY pyproject.toml .build-extra" in x for x in seen[:-1])
            if after_deps_copy and ": RUN " in line:  # the dependency install has started
                break
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = proc.wait(timeout=20)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
        for line in seen:  # a build that finished anyway leaves no tag behind
            if line.startswith("→ Bundled server image"):
                docker("rmi", line.split()[4], check=False)
    assert code == 143, "".join(seen)  # closed by our SIGTERM handler, not killed
    assert took < 10, took
    builds = subprocess.run(["pgrep", "-f", "docker build .*fluxdeploy.context-hash"],
                            capture_output=True, text=True, check=False).stdout
    assert builds.strip() == ""
