# ruff: noqa: F811  (pytest fixtures imported by name, then requested as arguments)
"""The production path of server/Dockerfile, built here as far as this machine allows.

Production builds on the NVIDIA CUDA base with the CUDA torch and the `quant` extras
(bitsandbytes + torchao). No registry is reachable here, so:

* every stage (runtime-base, deps, the image) is built with the production default
  SERVER_EXTRAS=quant on the offline Debian base, with the CPU torch wheel standing in for
  the CUDA one, and the image serves the tiny model quantized by torchao (int8) on the CPU;
* runtime-base is also built on a stand-in for the CUDA base: the same Debian base with
  python3 removed and a uid-1000 `ubuntu` user, as nvidia/cuda:*-ubuntu24.04 has, so the
  branch that installs python3 with apt and reuses uid 1000 really runs;
* REQUIRE_CUDA_TORCH=1, which the image workflow sets, stops a CPU-torch build early;
* the image with FLUX_REQUIRE_GPU=1 (what `up` sets for a GPU preset) fails into /ready
  `failed`, and `diagnose` names it from the container's log.

Every image made here is tagged from SERVER_IMAGE plus a suffix (never the plain test
image) and removed at the end of the module.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

from intelligensi_deploy.diagnosis.diagnose import diagnose
from tests.fixtures.docker_env import (  # noqa: F401  (pytest fixtures)
    BASE_IMAGE,
    REPO_ROOT,
    SCRIPTS,
    SERVER_IMAGE,
    Containers,
    base_image,
    docker,
    docker_containers,
    docker_engine,
    free_port,
    http_get,
    wait_http,
)

pytestmark = pytest.mark.docker

PROD_IMAGE = f"{SERVER_IMAGE}-prod-path"
CUDA_STANDIN_BASE = f"{SERVER_IMAGE}-cuda-standin-base"
RUNTIME_BASE_ON_STANDIN = f"{SERVER_IMAGE}-runtime-base-on-standin"
SERVER_DIR = REPO_ROOT / "server"
CLASSIC_BUILDER = {"DOCKER_BUILDKIT": "0"}  # Debian's docker.io has no buildx

# nvidia/cuda:*-runtime-ubuntu24.04 has no python3 and has user ubuntu (uid 1000).
STANDIN_DOCKERFILE = f"""\
FROM {BASE_IMAGE}
RUN apt-get purge -y --auto-remove 'python3*' 'libpython3*' \\
    && useradd --uid 1000 --create-home --shell /bin/bash ubuntu \\
    && ! command -v python3
"""


def _build(*args: str, stdin: str | None = None, timeout: float = 900
           ) -> subprocess.CompletedProcess[str]:
    """`docker build ARGS` with the classic builder, output merged (as a user reads it)."""
    return subprocess.run(
        ["docker", "build", "--force-rm", *args], input=stdin, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, **CLASSIC_BUILDER}, check=False)


def _remove_images(*images: str) -> None:
    for image in images:
        docker("rmi", "-f", image, check=False, timeout=120)


def new_layers(output: str) -> list[str]:
    """The image ids a classic-builder run made itself (not taken from the cache), in order."""
    made, cached = [], False
    for line in output.splitlines():
        line = line.strip()
        if line == "---> Using cache":
            cached = True
        elif m := re.fullmatch(r"---> ([0-9a-f]{12})", line):
            if not cached:
                made.append(m.group(1))
            cached = False
    return made


def _remove_leftovers(*outputs: str) -> None:
    """Drop the layers these builds made that nothing uses (a failed build leaves its steps
    behind); newest first, so that each is a leaf when its turn comes. Layers that another
    image still builds on are refused by the engine and stay."""
    for output in outputs:
        for image in reversed(new_layers(output)):
            docker("rmi", image, check=False, timeout=120)


def _in_image(image: str, code: str) -> str:
    return docker("run", "--rm", "--label", "fluxdeploy.test=1", image, "python", "-c", code,
                  timeout=180).stdout


@pytest.fixture(scope="module")
def production_build(base_image: str) -> Iterator[dict]:
    """The production path (SERVER_EXTRAS=quant) built by scripts/build_server_image.sh on the
    offline base, tagged PROD_IMAGE; its output and duration. Removed after the module."""
    start = time.monotonic()
    proc = subprocess.run(
        ["bash", str(SCRIPTS / "build_server_image.sh")], capture_output=True, text=True,
        timeout=2400, cwd=REPO_ROOT, check=False,
        env={**os.environ, "SERVER_IMAGE": PROD_IMAGE, "BASE_IMAGE": base_image,
             "SERVER_EXTRAS": "quant"})
    seconds = time.monotonic() - start
    output = proc.stdout + proc.stderr
    try:
        assert proc.returncode == 0, f"production-path build failed:\n{output[-4000:]}"
        print(f"\nproduction-path build (SERVER_EXTRAS=quant): {seconds:.0f}s")
        yield {"image": PROD_IMAGE, "output": output, "seconds": seconds}
    finally:
        _remove_images(PROD_IMAGE)
        _remove_leftovers(output)


def test_every_stage_builds_with_the_quant_extras(production_build: dict) -> None:
    output = production_build["output"]
    for stage in (r"AS runtime-base", "FROM runtime-base AS deps", "FROM runtime-base\n"):
        assert stage in output, f"stage {stage!r} not built:\n{output[-3000:]}"
    listed = output.split("requirements:", 1)[1]
    assert "bitsandbytes>=" in listed and "torchao>=" in listed
    report = json.loads(_in_image(production_build["image"], (
        "import json, bitsandbytes, torchao, torch; from flux_server import memory; "
        "print(json.dumps({'backends': sorted(memory.installed_backends()), "
        "'bitsandbytes': bitsandbytes.__version__, 'torchao': torchao.__version__, "
        "'torch': torch.__version__}))")).strip().splitlines()[-1])
    assert report["backends"] == ["bitsandbytes", "torchao"]
    # the image holds the versions the tests ran with (constraints from this venv)
    for name in ("bitsandbytes", "torchao"):
        assert report[name] == importlib.metadata.version(name), report


def test_production_image_serves_a_torchao_int8_model_and_says_it_runs_on_the_cpu(
    production_build: dict, docker_containers: Containers
) -> None:
    port = free_port()
    cid = docker_containers.run(
        production_build["image"], publish=[(port, 8000)],
        env={"FLUX_MODEL": "tiny", "FLUX_QUANT": "int8", "FLUX_MEMORY": "cpu"})
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/ready", timeout=300, interval=0.5,
              alive=lambda: docker_containers.assert_running(cid))
    status = json.loads(http_get(f"{base}/model-status")[1])
    assert status["strategy"]["quant"] == "int8", status["strategy"]
    assert "transformer" in status["strategy"]["quantized_components"]
    request = urllib.request.Request(
        f"{base}/generate", method="POST", headers={"Content-Type": "application/json"},
        data=json.dumps({"prompt": "a fox", "width": 64, "height": 64,
                         "num_inference_steps": 2, "seed": 3}).encode())
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.status == 200 and response.read().startswith(b"\x89PNG")
    log = docker_containers.logs(cid)
    line = next((x for x in log.splitlines() if "cuda: not available" in x), "")
    assert "CPU-only build" in line and "runs on the CPU" in line, log[-2000:]


def test_gpu_required_without_one_fails_ready_and_diagnose_names_it(
    production_build: dict, docker_containers: Containers
) -> None:
    port = free_port()
    cid = docker_containers.run(production_build["image"], publish=[(port, 8000)],
                                env={"FLUX_MODEL": "tiny", "FLUX_REQUIRE_GPU": "1"})
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/health", timeout=120, alive=lambda: docker_containers.assert_running(cid))
    deadline = time.monotonic() + 120
    body: dict = {}
    while time.monotonic() < deadline:
        status, raw = http_get(f"{base}/ready")
        body = json.loads(raw) if raw else {}
        if body.get("state") in ("failed", "ready"):
            break
        time.sleep(0.3)
    assert status == 503 and body["state"] == "failed", body
    assert body["error"]["type"] == "GpuNotVisible"
    assert "CPU-only build" in body["error"]["message"]
    assert "TORCH_SPEC" in body["error"]["hint"]
    docker_containers.assert_running(cid)  # stays up so the reason can be read
    log = docker("logs", "-t", cid, timeout=30)
    findings = diagnose(log.stdout + log.stderr)
    assert [f.id for f in findings if f.severity == "error"] == ["gpu-not-visible"], findings


def test_require_cuda_torch_stops_a_cpu_torch_build_before_the_dependencies(
    production_build: dict,
) -> None:
    spec = next(line.rsplit(" with ", 1)[1].strip()
                for line in production_build["output"].splitlines()
                if line.startswith("build_server_image: building "))
    assert "+cpu" in spec, spec  # the stand-in torch; production's is the CUDA build
    proc = _build("--target", "deps", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
                  "--build-arg", f"TORCH_SPEC={spec}", "--build-arg", "SERVER_EXTRAS=quant",
                  "--build-arg", "REQUIRE_CUDA_TORCH=1", str(SERVER_DIR))
    output = proc.stdout + proc.stderr
    _remove_leftovers(output)  # the classic builder keeps the steps before the failure
    assert proc.returncode != 0, output[-2000:]
    assert "is a CPU-only build" in output and "TORCH_INDEX_URL" in output, output[-2000:]
    assert "requirements:" not in output  # stopped before minutes of pip


@pytest.fixture(scope="module")
def runtime_base_on_cuda_standin(base_image: str) -> Iterator[str]:
    """runtime-base built on a base without python3 and with uid 1000 taken (as CUDA's)."""
    outputs: list[str] = []
    try:
        made = _build("-t", CUDA_STANDIN_BASE, "-", stdin=STANDIN_DOCKERFILE, timeout=300)
        outputs.append(made.stdout)
        assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
        built = _build("--target", "runtime-base", "--build-arg",
                       f"BASE_IMAGE={CUDA_STANDIN_BASE}", "-t", RUNTIME_BASE_ON_STANDIN,
                       str(SERVER_DIR), timeout=600)
        outputs.append(built.stdout)
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
        assert "Setting up python3" in built.stdout  # apt ran: the branch the CUDA base takes
        yield RUNTIME_BASE_ON_STANDIN
    finally:
        _remove_images(RUNTIME_BASE_ON_STANDIN, CUDA_STANDIN_BASE)
        _remove_leftovers(*reversed(outputs))


def test_runtime_base_installs_python_and_reuses_uid_1000_on_a_cuda_like_base(
    runtime_base_on_cuda_standin: str,
) -> None:
    out = docker("run", "--rm", "--label", "fluxdeploy.test=1", runtime_base_on_cuda_standin,
                 "sh", "-c",
                 "python3 -m venv /tmp/v && /tmp/v/bin/python -c 'import ssl; print(\"venv-ok\")';"
                 " getent passwd 1000 | cut -d: -f1; stat -c %u /data/hf; "
                 "getent passwd flux || echo no-flux-user",
                 timeout=120).stdout.split()
    assert out == ["venv-ok", "ubuntu", "1000", "no-flux-user"], out
