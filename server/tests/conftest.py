"""Fixtures: real `python -m flux_server` processes on free 127.0.0.1 ports, the tiny
pipeline saved at test time, and the fake Hugging Face Hub."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_ROOT = REPO_ROOT / "server"
for path in (str(REPO_ROOT), str(SERVER_ROOT)):
    if path not in sys.path:
        sys.path.insert(0, path)

from tests.fixtures.ports import free_port  # importable now that the repo root is on sys.path

GOOD_TOKEN = "hf_fakehubgoodtoken0123456789"
WRONG_TOKEN = "hf_fakehubwrongtoken987654321"
GATED_REPO = "black-forest-labs/FLUX.1-dev"
OPEN_REPO = "black-forest-labs/FLUX.1-schnell"  # open, served at full speed
TOKEN_VARS = ("HF_TOKEN", "HUGGINGFACEHUB_API_TOKEN", "HUGGINGFACE_TOKEN")


class ServerProcess:
    """`python -m flux_server` in a subprocess, logging to a file."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        full_env = {k: v for k, v in os.environ.items() if k not in TOKEN_VARS}
        full_env.update({
            "PORT": str(self.port), "FLUX_HOST": "127.0.0.1",
            "HF_HOME": str(workdir / f"{name}-hf"), "HF_HUB_DISABLE_TELEMETRY": "1",
            "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
                [str(SERVER_ROOT), full_env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "PYTHONUNBUFFERED": "1",
        })
        full_env.update(env)
        self._log = open(self.log_path, "wb")  # noqa: SIM115  (closed by stop())
        self.proc = subprocess.Popen([sys.executable, "-m", "flux_server"], env=full_env,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=str(workdir))
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for(self, predicate: Callable[[], object], timeout: float = 240.0,
                 what: str = "condition") -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n"
                                     f"{self.log_text()[-3000:]}")
            try:
                value = predicate()
                if value:
                    return value
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: timed out waiting for {what}:\n"
                             f"{self.log_text()[-3000:]}")

    def wait_health(self) -> httpx.Response:
        return self.wait_for(lambda: (r := self.client.get("/health")).status_code == 200 and r,
                             what="/health 200")

    def wait_state(self, *states: str, timeout: float = 240.0) -> dict:
        def check():
            body = self.client.get("/ready").json()
            return body if body["state"] in states else None
        return self.wait_for(check, timeout, what=f"state in {states}")

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


@pytest.fixture(scope="session")
def hub_names() -> dict[str, str]:
    """The fake hub's gated repository, its good and wrong tokens, and an open repo."""
    return {"repo": GATED_REPO, "good_token": GOOD_TOKEN, "wrong_token": WRONG_TOKEN,
            "open_repo": OPEN_REPO}


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("flux-server")


def lora_root(workdir: Path) -> Path:
    """The FLUX_LORA_DIR of the test servers: the only folder /apply-lora reads."""
    root = workdir / "loras"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="session")
def lora_dir(workdir) -> Path:
    """The FLUX_LORA_DIR of the `tiny` server."""
    return lora_root(workdir)


@pytest.fixture(scope="session")
def start_server(workdir):
    started: list[ServerProcess] = []

    def start(name: str, **env: str) -> ServerProcess:
        server = ServerProcess(name, env, workdir)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def tiny_dir(workdir) -> Path:
    """The tiny FLUX pipeline saved with the installed library versions."""
    from flux_server.tiny import save_tiny_pipeline

    return save_tiny_pipeline(workdir / "tiny-pipeline")


@pytest.fixture(scope="session")
def fake_hub(tiny_dir):
    from tests.fakes.fake_hf_hub import FakeHfHub

    hub = FakeHfHub().start()
    # served slowly (about 5 s for 0.7 MB) so that download progress can be watched
    hub.add_repo(GATED_REPO, tiny_dir, gated=True, tokens=[GOOD_TOKEN], bytes_per_second=150_000)
    hub.add_repo(OPEN_REPO, tiny_dir)
    yield hub
    hub.stop()


def _watch_early(server: ServerProcess) -> threading.Thread:
    """Record what the server says the moment /health first answers (while loading)."""
    def watch() -> None:
        try:
            health = server.wait_health()
            server.early = {
                "health": health, "ready": server.client.get("/ready"),
                "generate": server.client.post("/generate", json={"prompt": "too early"})}
        except Exception as exc:  # noqa: BLE001  (reported by the test that reads `early`)
            server.early = {"error": exc}
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _watch_progress(server: ServerProcess) -> threading.Thread:
    """Record every /ready body seen while the server is downloading."""
    server.downloading = []

    def watch() -> None:
        try:
            server.wait_health()
            while True:
                body = server.client.get("/ready").json()
                if body["state"] == "downloading":
                    server.downloading.append(body)
                elif body["state"] in ("loading", "warming", "ready", "failed"):
                    return
                time.sleep(0.05)
        except Exception as exc:  # noqa: BLE001  (reported by the test reading `downloading`)
            server.downloading.append({"watch_error": repr(exc)})
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="session")
def servers(start_server, fake_hub, workdir) -> dict[str, ServerProcess]:
    """Every server process, started at once so their start-ups overlap."""
    found = {
        # the tiny pipeline with a slow loading phase (FLUX_TEST_LOAD_DELAY)
        "tiny": start_server("tiny", FLUX_MODEL="tiny", FLUX_TEST_LOAD_DELAY="4",
                             FLUX_LORA_DIR=str(lora_root(workdir))),
        # queue of 1, each generation held 5 s, 2.5 s to start and 2.5 s to run
        "slow": start_server("slow", FLUX_MODEL="tiny", FLUX_QUEUE_SIZE="1",
                             FLUX_TEST_GENERATE_DELAY="5", FLUX_QUEUE_TIMEOUT="2.5",
                             FLUX_RUN_TIMEOUT="2.5"),
        "bad_path": start_server("bad-path", FLUX_MODEL=str(workdir / "no-such-model")),
        "device_map_auto": start_server("device-map-auto", FLUX_MODEL="tiny",
                                        FLUX_DEVICE_MAP="auto"),
        "gated_no_token": start_server("gated-no-token", FLUX_MODEL=GATED_REPO,
                                       HF_ENDPOINT=fake_hub.url),
        "gated_wrong_token": start_server("gated-wrong-token", FLUX_MODEL=GATED_REPO,
                                          HF_ENDPOINT=fake_hub.url, HF_TOKEN=WRONG_TOKEN),
        "bad_setting": start_server("bad-setting", FLUX_MODEL="tiny", FLUX_MEMORY="lots"),
        # what the CLI sets for a preset with `gpus: true`, on this machine without a GPU
        "gpu_required": start_server("gpu-required", FLUX_MODEL="tiny", FLUX_REQUIRE_GPU="1"),
        "hub_ok": start_server("hub-ok", FLUX_MODEL=GATED_REPO, HF_ENDPOINT=fake_hub.url,
                               HUGGINGFACEHUB_API_TOKEN=GOOD_TOKEN),
    }
    found["tiny"].early_watch = _watch_early(found["tiny"])
    found["hub_ok"].progress_watch = _watch_progress(found["hub_ok"])
    return found


@pytest.fixture(scope="session")
def tiny_server(servers) -> ServerProcess:
    """The tiny pipeline on CPU; `early` holds /health, /ready and /generate from the moment
    /health first answered."""
    server = servers["tiny"]
    server.early_watch.join(240)
    return server


@pytest.fixture(scope="session")
def ready_server(tiny_server) -> ServerProcess:
    tiny_server.wait_state("ready", "failed")
    return tiny_server


@pytest.fixture(scope="session")
def slow_server(servers) -> ServerProcess:
    """Queue of 1, every generation held 5 s by the test hook, requests time out after 2.5 s."""
    servers["slow"].wait_state("ready", "failed")
    return servers["slow"]


@pytest.fixture(scope="session")
def load_servers(servers) -> dict[str, ServerProcess]:
    """Servers with a bad path, a rejected device_map, a bad setting, a GPU required where there
    is none, and the fake hub's gated repository without, with a wrong and with a good token."""
    return servers
