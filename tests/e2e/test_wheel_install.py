"""The CLI as a user gets it: the wheel built from this repository, pip-installed in a venv
outside it, deploys the bundled server (built from the context the wheel carries) on the
local Docker engine, and generates."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.test_e2e_bundled import build_env
from tests.fixtures.docker_env import docker, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

REPO = Path(__file__).resolve().parents[2]


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A venv outside the repository with the fluxdeploy wheel installed (and nothing else)."""
    tmp = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp / "dist"), str(REPO)], timeout=300)
    wheel = next((tmp / "dist").glob("intelligensi_deploy-*.whl"))
    venv = tmp / "venv"
    run(["python3", "-m", "venv", str(venv)], timeout=120)
    run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], timeout=600, cwd=tmp)
    yield venv


def test_the_wheel_carries_the_build_context_and_presets_but_no_build_extra(
        installed: Path) -> None:
    wheel = next(installed.parent.glob("dist/intelligensi_deploy-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("_server/Dockerfile", "_server/.dockerignore", "_server/pyproject.toml",
                   "_server/flux_server/app.py", "_presets/local.yaml"):
        assert f"intelligensi_deploy/{needed}" in names, needed
    assert not [n for n in names if ".build-extra" in n or "__pycache__" in n]
    assert not [n for n in names if "/tests/" in n]


def test_pip_installed_cli_deploys_the_bundled_server(installed: Path, tmp_path: Path,
                                                      server_image: str) -> None:
    fluxdeploy = str(installed / "bin" / "fluxdeploy")
    config = tmp_path / "config"
    (config / "presets").mkdir(parents=True)
    port = free_port()
    (config / "presets" / "wheel-local.yaml").write_text(
        "provider: local\nimage: bundled\nserver: {model: tiny, memory: cpu, dtype: fp32}\n"
        f"gpus: false\nport: {port}\nready_timeout: 300\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLUXDEPLOY_", "HF_", "GHCR_", "PYTHONPATH"))}
    overrides = build_env(Path("/unused"))
    del overrides["FLUXDEPLOY_SERVER_CONTEXT"]   # the context must come from the wheel
    env.update(overrides, FLUXDEPLOY_HOME=str(tmp_path / "home"),
               FLUXDEPLOY_CONFIG=str(config), COLUMNS="200")
    cwd = tmp_path  # outside the repository: nothing of the checkout is importable

    probe = ("from intelligensi_deploy.bundle.context import find_context_dir; "
             "print(find_context_dir())")
    where = run([str(installed / "bin" / "python"), "-c", probe], env=env, cwd=cwd).stdout.strip()
    assert where.startswith(str(installed)) and where.endswith("intelligensi_deploy/_server")
    listed = run([fluxdeploy, "presets", "list"], env=env, cwd=cwd).stdout
    assert "lambda-a10" in listed and "local" in listed

    name = f"wheel-{uuid.uuid4().hex[:8]}"
    try:
        up = run([fluxdeploy, "up", "--preset", "wheel-local", "--name", name], env=env,
                 cwd=cwd, timeout=1200)
        output = up.stdout + up.stderr
        assert "Bundled server image fluxdeploy/flux-server:" in output
        assert f"Ready: deployment '{name}'" in output
        out = tmp_path / "fox.png"
        run([fluxdeploy, "generate", "a red fox", "-o", str(out), "--width", "64",
             "--height", "64", "--steps", "2"], env=env, cwd=cwd, timeout=120)
        with Image.open(out) as image:
            assert image.size == (64, 64)
        # the same content hash as the checkout's server: the wheel ships that server
        from intelligensi_deploy.bundle.build import plan_build
        from intelligensi_deploy.bundle.settings import BuildSettings, resolve

        tag = plan_build(resolve(BuildSettings(), {}, overrides), {}).tag
        assert tag in output
    finally:
        subprocess.run([fluxdeploy, "down", "--name", name], env=env, cwd=cwd,
                       capture_output=True, check=False, timeout=120)
        docker("rm", "-f", f"fluxdeploy-{name}", check=False)
