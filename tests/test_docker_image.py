# ruff: noqa: F811  (pytest fixtures imported by name, then requested as arguments)
"""The server image against the real Docker engine and a real private registry.

Builds server/Dockerfile on the offline CPU base (see tests/fixtures/docker_env.py), runs it
with the tiny model, and exercises the registry login/pull paths the CLI relies on.
"""

from __future__ import annotations

import io
import json
import shutil
import time
import urllib.request

import pytest

from tests.fixtures.docker_env import (  # noqa: F401  (pytest fixtures)
    Containers,
    Registry,
    base_image,
    docker,
    docker_config,
    docker_containers,
    docker_engine,
    free_port,
    http_get,
    registry,
    server_image,
    wait_http,
)

pytestmark = pytest.mark.docker

# The engine's own words on a machine without the NVIDIA container toolkit; the doctor's
# diagnosis tests match on this text.
GPU_DRIVER_ERROR = 'could not select device driver "" with capabilities: [[gpu]]'


def _inspect(image: str) -> dict:
    return json.loads(docker("image", "inspect", image).stdout)[0]


def test_image_config(server_image: str) -> None:
    cfg = _inspect(server_image)["Config"]
    assert cfg["Cmd"] == ["python", "-m", "flux_server"]
    assert "8000/tcp" in (cfg.get("ExposedPorts") or {})
    assert "/data/hf" in (cfg.get("Volumes") or {})
    env = dict(e.split("=", 1) for e in cfg["Env"])
    assert env["HF_HOME"] == "/data/hf"
    # build-time helpers must not be left enabled at runtime
    assert not {"PIP_CERT", "PIP_FIND_LINKS"} & env.keys()
    hc = cfg.get("Healthcheck") or {}
    assert hc.get("Test"), "no HEALTHCHECK in the image"
    # python, not curl (the image has none); what it probes: server/tests/test_healthcheck.py
    assert hc["Test"][1:] == ["python", "-m", "flux_server.healthcheck"], hc["Test"]
    assert cfg.get("User") not in ("", "0", "root", None)


def test_image_runs_as_non_root_and_holds_no_build_extras(server_image: str) -> None:
    out = docker(
        "run", "--rm", "--label", "fluxdeploy.test=1", server_image, "sh", "-c",
        "id -u; ls /tmp; python -c 'import flux_server, torch; print(torch.__version__)'; "
        "test -w /data/hf && echo hf-writable",
        timeout=120,
    ).stdout.split()
    assert out[0] != "0", f"runs as root: {out}"
    assert "build" not in out and "src" not in out, f"build leftovers in /tmp: {out}"
    assert "hf-writable" in out, "HF_HOME (/data/hf) is not writable by the image's user"


def test_tiny_model_serves_health_ready_generate(
    server_image: str, docker_containers: Containers
) -> None:
    port = free_port()
    cid = docker_containers.run(
        server_image,
        env={"FLUX_MODEL": "tiny"},
        publish=[(port, 8000)],
        # the image's HEALTHCHECK, polled every second here so the test sees it pass
        extra_args=["--health-interval", "1s", "--health-start-period", "0s"],
    )
    base = f"http://127.0.0.1:{port}"
    alive = lambda: docker_containers.assert_running(cid)
    t_health = wait_http(f"{base}/health", timeout=60, alive=alive)
    t_ready = wait_http(f"{base}/ready", timeout=240, interval=0.5, alive=alive)
    status, body = http_get(f"{base}/ready")
    assert status == 200 and json.loads(body)["ready"] is True
    # the prompt page ships in the image (package data of flux_server)
    for path, marker in (("/", b'src="page/app.js"'), ("/page/app.js", b"describeReady")):
        status, body = http_get(f"{base}{path}")
        assert status == 200 and marker in body, path

    req = urllib.request.Request(
        f"{base}/generate",
        data=json.dumps({"prompt": "a red fox", "width": 64, "height": 64,
                         "num_inference_steps": 2, "seed": 1}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=120) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("image/png")
        png = resp.read()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        assert im.size == (64, 64)

    # Docker's own health status, from the image's HEALTHCHECK
    deadline = time.monotonic() + 60
    health = None
    while time.monotonic() < deadline:
        health = json.loads(docker("inspect", "-f", "{{json .State.Health}}", cid).stdout)
        if health and health.get("Status") == "healthy":
            break
        time.sleep(0.5)
    assert health and health["Status"] == "healthy", health
    print(f"/health after {t_health:.1f}s, /ready after {t_ready:.1f}s")


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a GPU")
def test_gpus_all_fails_without_nvidia_toolkit(server_image: str) -> None:
    proc = docker("run", "--rm", "--label", "fluxdeploy.test=1", "--gpus", "all",
                  server_image, "true", check=False, timeout=120)
    assert proc.returncode != 0
    assert GPU_DRIVER_ERROR in proc.stderr, proc.stderr


def test_registry_pull_without_login_fails(registry: Registry, docker_config: str) -> None:
    proc = docker("pull", registry.image, env={"DOCKER_CONFIG": docker_config},
                  check=False, timeout=120)
    assert proc.returncode != 0
    assert "no basic auth credentials" in proc.stderr, proc.stderr


def test_registry_login_wrong_password_fails(registry: Registry, docker_config: str) -> None:
    proc = registry.login(docker_config, password="not-" + registry.password)
    assert proc.returncode != 0
    assert "401 Unauthorized" in proc.stderr, proc.stderr
    assert registry.password not in proc.stdout + proc.stderr


def test_registry_login_then_pull(registry: Registry, docker_config: str) -> None:
    login = registry.login(docker_config)
    assert login.returncode == 0, login.stderr
    assert "Login Succeeded" in login.stdout
    try:
        pull = docker("pull", registry.image, env={"DOCKER_CONFIG": docker_config},
                      check=False, timeout=600)
        assert pull.returncode == 0, pull.stderr
        pulled = _inspect(registry.image)
        assert pulled["Config"]["Cmd"] == ["python", "-m", "flux_server"]
    finally:
        docker("rmi", registry.image, check=False)
