"""/apply-lora against a real server and a fake hub that trickles: a slow download does not
hold up generations, concurrent applies share one download, the size and time limits answer
clearly, and no path outside FLUX_LORA_DIR or pickle file is ever read."""

from __future__ import annotations

import os
import pickle
import threading
import time

import pytest

TRICKLE_S = 3.0  # the LoRA file arrives over about this long
LORA_TIMEOUT_S = 6.0
MAX_BYTES = 12_000  # the tiny LoRA (about 9 kB) fits; the 20 kB "big" one does not
SMALL = {"prompt": "a fox", "width": 64, "height": 64, "num_inference_steps": 2, "seed": 3}


class Exploit:
    """Unpickling this runs `touch MARKER`: proof that a pickle was loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def hub_and_server(tiny_dir, workdir, start_server, lora_dir):
    from flux_server.tiny import save_tiny_lora

    from tests.fakes.fake_hf_hub import FakeHfHub

    lora = workdir / "hub-lora"
    if not lora.exists():
        save_tiny_lora(tiny_dir, lora)
    size = (lora / "pytorch_lora_weights.safetensors").stat().st_size
    big, pickled = workdir / "hub-big", workdir / "hub-pickled"
    big.mkdir(exist_ok=True)
    (big / "pytorch_lora_weights.safetensors").write_bytes(b"\0" * 20_000)
    pickled.mkdir(exist_ok=True)
    marker = workdir / "pickle-ran"
    (pickled / "pytorch_lora_weights.bin").write_bytes(pickle.dumps(Exploit(str(marker))))
    hub = FakeHfHub().start()
    hub.add_repo("t/slow", lora, bytes_per_second=size / TRICKLE_S)
    hub.add_repo("t/slower", lora, bytes_per_second=size / 60)
    hub.add_repo("t/big", big)
    hub.add_repo("t/pickled", pickled)
    local = lora_dir / "local-pickled"
    local.mkdir(exist_ok=True)
    (local / "pytorch_lora_weights.bin").write_bytes(pickle.dumps(Exploit(str(marker))))
    server = start_server("lora-hub", FLUX_MODEL="tiny", HF_ENDPOINT=hub.url,
                          FLUX_LORA_DIR=str(lora_dir), FLUX_LORA_TIMEOUT=str(LORA_TIMEOUT_S),
                          FLUX_LORA_MAX_BYTES=str(MAX_BYTES))
    assert server.wait_state("ready", "failed")["state"] == "ready"
    yield hub, server, marker
    hub.stop()


def _downloads(hub, repo: str) -> int:
    return sum(1 for r in hub.requests if r.method == "GET" and
               r.path.startswith(f"/{repo}/resolve/"))


def test_a_slow_lora_download_does_not_hold_up_a_generation(hub_and_server):
    hub, server, _ = hub_and_server
    assert server.client.post("/generate", json=SMALL).status_code == 200  # warm
    applied: list = []

    def apply() -> None:
        started = time.monotonic()
        response = server.client.post("/apply-lora", json={"source": "t/slow"})
        applied.append((response, time.monotonic() - started))

    appliers = [threading.Thread(target=apply) for _ in range(2)]
    for thread in appliers:
        thread.start()
    time.sleep(TRICKLE_S / 3)
    generated = server.client.post("/generate", json=SMALL)
    for thread in appliers:
        thread.join()
    assert generated.status_code == 200
    assert [r.status_code for r, _ in applied] == [200, 200], [r.text for r, _ in applied]
    apply_s = min(s for _, s in applied)
    assert apply_s >= TRICKLE_S * 0.8  # the download really was slow
    queue_wait = float(generated.headers["x-queue-wait-seconds"])
    assert queue_wait < apply_s / 5, (queue_wait, apply_s)
    assert _downloads(hub, "t/slow") == 1  # the two applies shared one download
    adapters = server.client.get("/lora-status").json()["adapters"]
    assert [a["name"] for a in adapters] == ["slow"]
    server.client.post("/remove-lora", json={})


def test_the_size_and_time_limits_answer_clearly(hub_and_server):
    hub, server, _ = hub_and_server
    big = server.client.post("/apply-lora", json={"source": "t/big"})
    assert big.status_code == 400
    assert big.json()["error"]["type"] == "LoraTooLarge"
    assert f"FLUX_LORA_MAX_BYTES={MAX_BYTES}" in big.json()["error"]["message"]
    assert _downloads(hub, "t/big") == 0  # refused from the listing's size
    started = time.monotonic()
    slower = server.client.post("/apply-lora", json={"source": "t/slower"})
    took = time.monotonic() - started
    assert slower.status_code == 504, slower.text
    assert slower.json()["error"]["type"] == "LoraTimeout"
    assert f"FLUX_LORA_TIMEOUT={LORA_TIMEOUT_S:g}s" in slower.json()["error"]["message"]
    assert took < LORA_TIMEOUT_S * 3
    assert server.client.get("/lora-status").json()["active"] is False


def test_paths_outside_the_lora_folder_get_one_answer(hub_and_server):
    _, server, _ = hub_and_server
    answers = set()
    for source in ("/etc/shadow", "/etc/no-such-file-here", "/proc/self/environ",
                   "../../../../etc/passwd", "/root/.cache"):
        response = server.client.post("/apply-lora", json={"source": source})
        assert response.status_code == 422, (source, response.text)
        answers.add(response.text.split('"detail"')[0])
    assert len(answers) == 1, answers
    quick = time.monotonic()
    assert server.client.post("/apply-lora", json={"source": "0"}).status_code == 422
    assert time.monotonic() - quick < 5  # a name in FLUX_LORA_DIR: no hub lookup


def test_pickles_are_refused_before_they_are_read(hub_and_server):
    hub, server, marker = hub_and_server
    for body in ({"source": "t/pickled"},
                 {"source": "t/pickled", "weight_name": "pytorch_lora_weights.bin"},
                 {"source": "local-pickled"},
                 {"source": "local-pickled", "weight_name": "pytorch_lora_weights.bin"}):
        response = server.client.post("/apply-lora", json=body)
        assert response.status_code == 422, (body, response.text)
        assert "pickle weights are not accepted; convert to safetensors" in response.text
    assert _downloads(hub, "t/pickled") == 0
    assert not marker.exists()
