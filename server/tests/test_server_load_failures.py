"""Models that cannot load end in `failed` with the right reason while /health stays 200;
and a gated model loads through the fake hub once the token is right."""

from __future__ import annotations

import pytest


def _failed(server) -> dict:
    body = server.wait_state("failed", "ready")
    assert body["state"] == "failed", body
    response = server.client.get("/ready")
    assert response.status_code == 503  # terminal: no Retry-After, x-should-retry false
    assert "Retry-After" not in response.headers
    assert response.headers["x-should-retry"] == "false"
    assert server.client.get("/health").json() == {"status": "ok"}
    return body["error"]


def test_bad_path_fails_with_path_hint(load_servers):
    server = load_servers["bad_path"]
    error = _failed(server)
    assert error["type"] == "ModelPathNotFound"
    assert "no such directory" in error["message"]
    assert "mount" in error["hint"]
    assert "ModelPathNotFound" in server.log_text()


def test_device_map_auto_fails_with_diffusers_own_error(load_servers):
    server = load_servers["device_map_auto"]
    error = _failed(server)
    assert error["type"] == "NotImplementedError"
    assert "auto not supported" in error["message"]  # diffusers' words, not ours
    assert "FLUX_DEVICE_MAP" in error["hint"]
    generate = server.client.post("/generate", json={"prompt": "x"})
    assert generate.status_code == 503 and "Retry-After" not in generate.headers  # terminal
    assert "will not clear by itself" in generate.json()["error"]["message"]
    assert generate.json()["error"]["hint"] == error["hint"]


def test_gated_repo_without_token_names_hf_token(load_servers, fake_hub, hub_names):
    server = load_servers["gated_no_token"]
    error = _failed(server)
    assert error["type"] == "GatedRepoError"
    assert "HF_TOKEN" in error["hint"] and "GHCR" not in error["hint"]
    assert "401" in error["message"]
    assert "GatedRepoError" in server.log_text()
    assert any(r.path.startswith(f"/api/models/{hub_names['repo']}") and not r.authorized
               for r in fake_hub.requests)


def test_gated_repo_with_wrong_token_says_refused_and_never_shows_it(load_servers, hub_names):
    wrong_token = hub_names["wrong_token"]
    server = load_servers["gated_wrong_token"]
    error = _failed(server)
    assert error["type"] == "GatedRepoError" and "403" in error["message"]
    assert "refused" in error["hint"] and "HF_TOKEN" in error["hint"]
    assert wrong_token not in server.log_text()
    assert wrong_token not in server.client.get("/model-status").text
    assert wrong_token not in server.client.get("/ready").text


def test_gated_repo_with_token_downloads_with_byte_progress_and_serves(load_servers, hub_names):
    good_token = hub_names["good_token"]
    server = load_servers["hub_ok"]
    body = server.wait_state("ready", "failed")
    assert body["state"] == "ready", body
    assert "downloading" in body["phase_elapsed_s"]
    progress = body["progress"]
    assert progress["bytes_total"] > 100_000
    assert progress["bytes_done"] == progress["bytes_total"]
    server.progress_watch.join(240)
    seen = server.downloading
    assert seen and "watch_error" not in seen[-1], seen
    partial = [b["progress"] for b in seen if 0 < b["progress"].get("bytes_done", 0)
               < b["progress"].get("bytes_total", 0)]
    assert partial, seen  # bytes were reported while the download was still going
    assert progress["components_done"] == progress["components_total"] == 7
    status = server.client.get("/model-status").json()
    assert status["tiny"] is False and status["kind"] == "dev"
    assert status["defaults"] == {"num_inference_steps": 28, "guidance_scale": 3.5,
                                  "width": 1024, "height": 1024}
    response = server.client.post("/generate", json={
        "prompt": "x", "width": 64, "height": 64, "num_inference_steps": 2})
    assert response.status_code == 200
    assert good_token not in server.log_text() and good_token not in str(status)


def test_bad_setting_fails_naming_the_variable(load_servers):
    server = load_servers["bad_setting"]
    error = _failed(server)
    assert error["type"] == "SettingsError"
    assert "FLUX_MEMORY" in error["message"] and "contract" in error["hint"]


def test_gpu_required_without_one_fails_with_the_reason_and_logs_what_cuda_sees(load_servers):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the requirement is met")
    server = load_servers["gpu_required"]
    error = _failed(server)
    assert error["type"] == "GpuNotVisible"
    assert "requires a GPU (FLUX_REQUIRE_GPU=1) but CUDA sees none" in error["message"]
    log = server.log_text()
    # the start-up line says what this process's torch is and why there is no GPU
    line = next(x for x in log.splitlines() if "cuda: not available" in x)
    assert f"torch {torch.__version__}" in line, line
    if torch.version.cuda is None:
        assert "CPU-only build" in error["message"] and "TORCH_SPEC" in error["hint"]
    assert "type=GpuNotVisible" in log
    assert "serving on" in log  # up and answering: the reason can be read from /ready
