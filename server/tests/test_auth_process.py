"""API keys on a real `python -m flux_server` process (the tiny model): generation with each
key, the official OpenAI SDK with and without one, SIGHUP re-reading the keys file without
reloading the model, a changed file seen without a signal, and no key in the log file."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

openai = pytest.importorskip("openai", reason="needs the server's [test] extra (openai)")

KEY_A = "fluxkey-alpha-0123456789abcdef"
KEY_B = "fluxkey-bravo-0123456789abcdef"
KEY_C = "fluxkey-charl-0123456789abcdef"  # as long as KEY_A: a same-size rewrite
WRONG = "fluxkey-wrong-0123456789abcdef"
SMALL = {"prompt": "a red fox", "width": 64, "height": 64, "seed": 1,
         "num_inference_steps": 2}


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def keyed_server(start_server, workdir):
    keys_file = workdir / "api-keys"
    keys_file.write_text(f"# fluxdeploy keys\n{KEY_A}\n{KEY_B}\n")
    server = start_server("api-keys", FLUX_MODEL="tiny", FLUX_API_KEYS_FILE=str(keys_file))
    assert server.wait_state("ready", "failed")["state"] == "ready", server.log_text()[-3000:]
    server.keys_file = keys_file
    yield server
    server.stop()
    log = server.log_path.read_text(errors="replace")
    for key in (KEY_A, KEY_B, KEY_C, WRONG):
        assert key not in log, "an API key reached the log"


def _status(server, key: str | None) -> int:
    headers = _bearer(key) if key else {}
    return server.client.post("/generate", json=SMALL, headers=headers).status_code


def _openai(server, key: str):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=60)


def test_generation_needs_a_key_and_takes_each(keyed_server):
    assert _status(keyed_server, None) == 401
    assert _status(keyed_server, WRONG) == 401
    assert _status(keyed_server, KEY_A) == 200
    assert _status(keyed_server, KEY_B) == 200
    ready = keyed_server.client.get("/ready").json()
    assert ready["ready"] and ready["model"] == "hidden"


def test_openai_sdk_with_the_key_and_with_a_wrong_one(keyed_server):
    result = _openai(keyed_server, KEY_A).images.generate(
        model="flux", prompt="a red fox", size="64x64", response_format="b64_json")
    assert len(result.data) == 1 and result.data[0].b64_json
    with pytest.raises(openai.AuthenticationError) as caught:
        _openai(keyed_server, WRONG).images.generate(
            model="flux", prompt="a red fox", size="64x64", response_format="b64_json")
    assert caught.value.status_code == 401
    body = caught.value.body  # the SDK hands over the body's `error` object
    assert isinstance(body, dict) and body.get("error", body)["type"] == "Unauthorized"


def _wait_status(server, key: str, expected: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (status := _status(server, key)) != expected:
        assert time.monotonic() < deadline, f"{key[:12]}...: {status}, not {expected}"
        time.sleep(0.1)


def _rewrite_keeping_the_stat(path: Path, text: str) -> None:
    """New content of the same size in place, the modification time put back: only a
    SIGHUP can tell the server."""
    before = path.stat()
    assert len(text.encode()) == before.st_size
    with open(path, "r+", encoding="utf-8") as handle:
        handle.write(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_sighup_rereads_the_keys_without_reloading_the_model(keyed_server):
    server, path = keyed_server, keyed_server.keys_file
    loads_before = server.log_text().count("loading model=")
    elapsed = server.client.get("/ready").json()["elapsed_s"]
    _rewrite_keeping_the_stat(path, f"# fluxdeploy keys\n{KEY_C}\n{KEY_B}\n")
    time.sleep(1.2)  # past the once-a-second look at the file: nothing changed there
    assert _status(server, KEY_A) == 200
    server.proc.send_signal(signal.SIGHUP)
    _wait_status(server, KEY_A, 401)  # revoked
    assert _status(server, KEY_C) == 200 and _status(server, KEY_B) == 200
    assert server.proc.poll() is None  # SIGHUP's default would have ended the process
    ready = server.client.get("/ready").json()
    assert ready["ready"] and ready["elapsed_s"] > elapsed  # the same load, still ready
    assert server.log_text().count("loading model=") == loads_before
    assert server.log_text().count("api keys: 2 key(s) loaded") >= 2


def test_a_changed_file_is_seen_without_a_signal(keyed_server):
    server, path = keyed_server, keyed_server.keys_file
    path.write_text(f"{KEY_A}\n")  # KEY_B and KEY_C revoked, KEY_A back
    _wait_status(server, KEY_B, 401)
    assert _status(server, KEY_C) == 401 and _status(server, KEY_A) == 200
    tmp = path.with_suffix(".new")  # an atomic replace, as a rotation writes it
    tmp.write_text(f"{KEY_B}\n")
    tmp.replace(path)
    _wait_status(server, KEY_A, 401)
    assert _status(server, KEY_B) == 200


def test_a_refused_request_logs_who_sent_it_and_never_the_key(keyed_server):
    before = keyed_server.log_text().count("status=401")
    for _ in range(3):
        assert keyed_server.client.get("/model-status", headers=_bearer(WRONG)).status_code \
            == 401
    deadline = time.monotonic() + 10
    while keyed_server.log_text().count("status=401") < before + 3:
        assert time.monotonic() < deadline, keyed_server.log_text()[-2000:]
        time.sleep(0.1)
    refused = [line for line in keyed_server.log_text().splitlines()
               if "route=/model-status status=401" in line]
    assert refused and all("auth=rejected client=127.0.0.1" in line for line in refused[-3:])
