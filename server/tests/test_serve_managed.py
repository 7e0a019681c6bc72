"""What KubeRay does with a rendered RayService, minus Kubernetes: a Ray head with token
auth and the API beside it in managed mode (the head pod's env from `fluxdeploy k8s render`),
then serveConfigV2 PUT to the dashboard as KubeRay's client sends it. The API joins that
application and serves: /ready counts its replicas, /generate answers."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.fixtures.ports import free_port

pytestmark = pytest.mark.skipif(__import__("importlib").util.find_spec("ray") is None,
                                reason="needs the server's `scale` extra (ray[serve])")

LOCAL = {"FLUX_MODEL": "tiny", "FLUX_MEMORY": "auto", "FLUX_REPLICA_RESOURCE": "fakegpu", "FLUX_REPLICA_CPUS": "0",
         "OMP_NUM_THREADS": "1"}


def _rendered() -> tuple[dict[str, str], dict]:
    """The API container's plain env and serveConfigV2 of the shipped lambda-3x-a100."""
    from intelligensi_deploy.k8s.render import render
    from intelligensi_deploy.preset_paths import SHIPPED_PRESETS_DIR
    from intelligensi_deploy.presets import load_preset

    preset = load_preset("lambda-3x-a100")
    manifests = render(preset, str(SHIPPED_PRESETS_DIR), image="ghcr.io/acme/flux:1")
    obj = next(m.obj for m in manifests if m.kind == "RayService")
    head = obj["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    api = next(c for c in head["containers"] if c["name"] == "server")
    env = {e["name"]: e["value"] for e in api["env"] if "value" in e}
    return env, yaml.safe_load(obj["spec"]["serveConfigV2"])


def _free_base() -> int:
    for base in range(15000, 19800, 200):
        try:
            for port in range(base, base + 121):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free port range")


def _ray_processes(ray_tmp: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if ray_tmp in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(proc.name))
    return found


def test_api_joins_the_application_deployed_from_serve_config_v2(tmp_path: Path) -> None:
    env, config = _rendered()
    assert env["FLUX_SERVE_MANAGED"] == "1"
    (app,) = config["applications"]
    app["runtime_env"]["env_vars"].pop("FLUX_REQUIRE_GPU")  # no GPU on this machine
    app["runtime_env"]["env_vars"].update(LOCAL)
    env.pop("FLUX_REQUIRE_GPU")
    base, port, dashboard = _free_base(), free_port(), free_port()
    token = secrets.token_hex(32)
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: unix sockets
    head_env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")},
                **env, **LOCAL, "PORT": str(port), "FLUX_HOST": "127.0.0.1",
                "HF_HOME": str(tmp_path / "hf"), "HOME": str(tmp_path),
                "FLUX_NODE_IP": "127.0.0.1", "FLUX_NODE_REPLICAS": "2",
                "FLUX_RAY_PORT_BASE": str(base), "FLUX_RAY_DASHBOARD_PORT": str(dashboard),
                "RAY_TMPDIR": ray_tmp, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
                "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "head.log"
    with open(log, "wb") as out:
        head = subprocess.Popen([sys.executable, "-m", "flux_server.node", "head"],
                                env=head_env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=tmp_path)
    try:
        _deploy_and_serve(head, log, port, dashboard, token, config)
    finally:
        if head.poll() is None:
            head.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                head.wait(30)
        if head.poll() is None:
            head.kill()
            head.wait(10)
        for pid in _ray_processes(ray_tmp):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _deploy_and_serve(head: subprocess.Popen, log: Path, port: int, dashboard: int,
                      token: str, config: dict) -> None:
    url, put = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{dashboard}/api/serve/applications/"
    body = json.dumps(config)
    deadline = time.monotonic() + 240
    while True:  # KubeRay retries until the dashboard answers
        assert head.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        try:
            refused = httpx.put(put, content=body, timeout=10,
                                headers={"Content-Type": "application/json"})
            if refused.status_code != 401:
                time.sleep(1)
                continue  # the dashboard is still starting
            response = httpx.put(put, content=body, timeout=30, headers={
                "Content-Type": "application/json", "x-ray-authorization": f"Bearer {token}"})
            assert response.status_code == 200, response.text
            break
        except httpx.TransportError:
            time.sleep(1)
    ready = None
    while time.monotonic() < deadline:
        assert head.poll() is None, log.read_text()[-3000:]
        with contextlib.suppress(httpx.TransportError, ValueError):
            response = httpx.get(url + "/ready", timeout=5)
            ready = response.json()
            if response.status_code == 200:
                break
        time.sleep(1)
    assert ready and ready["ready"], (json.dumps(ready)[:2000], log.read_text()[-3000:])
    assert ready["cluster"]["ready"] == "2/2"  # min_replicas of the preset
    generated = httpx.post(url + "/generate", json={"prompt": "a fox", "width": 64,
                                                    "height": 64}, timeout=120)
    assert generated.status_code == 200, generated.text
    assert "deploying flux on Ray Serve" not in log.read_text()  # it joined, never deployed
