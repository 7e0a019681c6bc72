"""The HTTP API of a real `python -m flux_server` running the tiny pipeline on CPU."""

from __future__ import annotations

import base64
import io
import time

import pytest
from PIL import Image


def test_health_answers_while_ready_is_still_503(tiny_server):
    early = tiny_server.early
    assert "error" not in early, early
    assert early["health"].json() == {"status": "ok"}
    ready = early["ready"]
    assert ready.status_code == 503
    assert int(ready.headers["Retry-After"]) > 0
    body = ready.json()
    assert body["state"] in ("starting", "loading", "warming")
    assert body["ready"] is False and body["error"] is None
    assert body["model"] == "tiny" and body["tiny"] is True
    assert set(body) == {"state", "ready", "model", "tiny", "elapsed_s", "phase_elapsed_s",
                         "progress", "error", "activity", "limits"}
    generate = early["generate"]
    assert generate.status_code == 503 and int(generate.headers["Retry-After"]) > 0
    assert generate.json()["error"]["type"] == "NotReady"


def test_ready_reaches_200_with_phase_timings_and_component_progress(ready_server):
    response = ready_server.client.get("/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "ready" and body["ready"] is True
    assert {"starting", "loading", "warming"} <= set(body["phase_elapsed_s"])
    assert body["phase_elapsed_s"]["loading"] >= 4.0  # FLUX_TEST_LOAD_DELAY
    assert body["progress"]["components_done"] == body["progress"]["components_total"] == 7
    assert ready_server.client.get("/health").status_code == 200


def _generate(server, **body):
    return server.client.post("/generate", json={"prompt": "a red fox", **body})


def test_generate_returns_png_of_requested_size(ready_server):
    response = _generate(ready_server, width=96, height=64, seed=7)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["X-Seed"] == "7"
    assert float(response.headers["X-Generation-Seconds"]) > 0
    image = Image.open(io.BytesIO(response.content))
    image.load()
    assert image.format == "PNG" and image.size == (96, 64)


def test_same_seed_gives_identical_bytes_and_another_seed_differs(ready_server):
    first = _generate(ready_server, seed=1234)
    second = _generate(ready_server, seed=1234)
    other = _generate(ready_server, seed=1235)
    assert first.status_code == second.status_code == other.status_code == 200
    assert first.content == second.content
    assert first.content != other.content


def test_unseeded_requests_report_the_seed_that_reproduces_them(ready_server):
    first = _generate(ready_server)
    seed = int(first.headers["X-Seed"])
    assert _generate(ready_server, seed=seed).content == first.content


@pytest.mark.parametrize("fmt,pil_format", [("jpeg", "JPEG"), ("webp", "WEBP")])
def test_output_formats(ready_server, fmt, pil_format):
    response = _generate(ready_server, output_format=fmt, seed=1)
    assert response.status_code == 200
    assert response.headers["content-type"] == f"image/{fmt}"
    assert Image.open(io.BytesIO(response.content)).format == pil_format


def test_b64_json_with_several_images_each_reproducible_by_its_seed(ready_server):
    response = _generate(ready_server, response_format="b64_json", num_images=2, seed=50)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [item["seed"] for item in body["images"]] == [50, 51]
    second = base64.b64decode(body["images"][1]["b64"])
    assert Image.open(io.BytesIO(second)).size == (64, 64)
    # image i is seed + i: the same pixels alone as in the batch, up to the float rounding
    # of batched against single convolutions (at most 1 of 255); another seed is far off
    alone = _pixels(_generate(ready_server, seed=51).content)
    assert _max_difference(_pixels(second), alone) <= 1
    assert _max_difference(_pixels(_generate(ready_server, seed=52).content), alone) > 32
    assert body["num_inference_steps"] == 2 and body["tiny"] is True


def _pixels(data: bytes) -> bytes:
    return Image.open(io.BytesIO(data)).convert("RGB").tobytes()


def _max_difference(a: bytes, b: bytes) -> int:
    assert len(a) == len(b)
    return max(abs(x - y) for x, y in zip(a, b))


def test_openai_route_returns_b64_json(ready_server):
    response = ready_server.client.post("/v1/images/generations", json={
        "model": "flux", "prompt": "a lighthouse", "n": 1, "size": "80x64",
        "response_format": "b64_json", "user": "someone"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["created"], int) and len(body["data"]) == 1
    image = Image.open(io.BytesIO(base64.b64decode(body["data"][0]["b64_json"])))
    assert image.size == (80, 64)


BAD_GENERATE = [
    ({"width": 64}, "prompt"),  # missing prompt
    ({"prompt": "x", "width": 1000}, "width"),  # not a multiple of 16
    ({"prompt": "x", "width": 4096}, "width"),  # beyond FLUX_MAX_SIDE
    ({"prompt": "x", "height": 32}, "height"),  # below the minimum
    ({"prompt": "x", "num_inference_steps": 0}, "num_inference_steps"),
    ({"prompt": "x", "num_inference_steps": "four"}, "num_inference_steps"),
    ({"prompt": "x", "width": "512"}, "width"),  # strings are not numbers
    ({"prompt": 42}, "prompt"),
    ({"prompt": "x", "seed": -1}, "seed"),
    ({"prompt": "x", "seed": 1.5}, "seed"),
    ({"prompt": "x", "guidance_scale": "high"}, "guidance_scale"),
    ({"prompt": "x", "num_images": 100, "response_format": "b64_json"}, "num_images"),
    ({"prompt": "x", "num_images": 2}, "num_images"),  # several images need b64_json
    ({"prompt": "x", "output_format": "gif"}, "output_format"),
    ({"prompt": "x", "response_format": "url"}, "response_format"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": "x", "unknown_field": 1}, "unknown_field"),
]


@pytest.mark.parametrize("body,field", BAD_GENERATE)
def test_bad_generate_input_gets_422_naming_field_and_rule(ready_server, body, field):
    response = ready_server.client.post("/generate", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert field in [d["field"] for d in detail]
    assert all(d["rule"] for d in detail)
    assert field in response.json()["error"]["message"]


@pytest.mark.parametrize("body,field", [
    ({"prompt": "x", "size": "huge"}, "size"),
    ({"prompt": "x", "size": "1000x1000"}, "size"),
    ({"prompt": "x", "n": 100}, "n"),
    ({"prompt": "x", "response_format": "url"}, "response_format"),
    ({"n": 1}, "prompt"),
])
def test_bad_openai_input_gets_422(ready_server, body, field):
    response = ready_server.client.post("/v1/images/generations", json=body)
    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in response.json()["detail"]]


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"", b'{"prompt": "x"'])
def test_malformed_bodies_get_422_and_the_process_stays_up(ready_server, raw):
    response = ready_server.client.post("/generate", content=raw,
                                        headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert ready_server.client.get("/health").status_code == 200


def test_model_status_reports_tiny_strategy_queue_and_timings(ready_server):
    body = ready_server.client.get("/model-status").json()
    assert body["tiny"] is True and "tiny" in body["label"]
    assert body["kind"] == "tiny" and body["defaults"]["num_inference_steps"] == 2
    assert body["strategy"]["strategy"] == "cpu" and body["dtype"] == "fp32"
    assert body["plans_tried"][-1]["outcome"] == "ok" and body["fallback_used"] is False
    assert body["queue"]["max_waiting"] == 16
    assert "loading" in body["load"]["phase_elapsed_s"]
    assert body["lora"] == {"active": False, "adapters": []} or body["lora"]["active"]
    assert "no-op" in body["attention_slicing"]


def test_metrics_are_prometheus_text(ready_server):
    _generate(ready_server, seed=3)
    text = ready_server.client.get("/metrics").text
    assert "flux_ready 1.0" in text
    assert 'flux_load_state{state="ready"} 1.0' in text
    assert "flux_generation_seconds_count" in text
    assert 'flux_request_duration_seconds_count{route="/generate",status="200"}' in text
    assert "flux_queue_depth" in text


def test_one_structured_log_line_per_request(ready_server):
    response = _generate(ready_server, seed=9, width=80, height=64)
    request_id = response.headers["x-request-id"]

    def request_lines() -> list[str]:
        return [line for line in ready_server.log_text().splitlines()
                if f"id={request_id}" in line]

    # The line is logged once the response has been sent, so it may land a moment after the
    # client has its answer: wait for it (a deadline, not a speed check), then count.
    deadline = time.monotonic() + 10
    while not request_lines() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = request_lines()
    assert len(lines) == 1
    line = lines[0]
    for part in ("request id=", "route=/generate", "status=200", "width=80", "height=64",
                 "steps=2", "queue_wait_s=", "generation_s="):
        assert part in line
    assert "tiny random-weight" in ready_server.log_text()


def test_openapi_docs(ready_server):
    assert ready_server.client.get("/docs").status_code == 200
    paths = ready_server.client.get("/openapi.json").json()["paths"]
    for path in ("/generate", "/v1/images/generations", "/ready", "/apply-lora", "/metrics"):
        assert path in paths


def test_lora_bad_path_is_422_naming_source(ready_server):
    response = ready_server.client.post("/apply-lora", json={"source": "/nope/lora.safetensors"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "source"
    assert "FLUX_LORA_DIR" in response.json()["error"]["message"]
    response = ready_server.client.post("/apply-lora", json={"source": "x", "weight": "heavy"})
    assert response.status_code == 422


def test_lora_folder_without_weights_is_422_saying_so(ready_server, lora_dir):
    empty = lora_dir / "empty-lora"
    empty.mkdir(exist_ok=True)
    response = ready_server.client.post("/apply-lora", json={"source": str(empty)})
    assert response.status_code == 422, response.text
    assert "no .safetensors weights" in response.json()["error"]["message"]
    assert ready_server.client.get("/lora-status").json()["active"] is False


def test_lora_that_is_not_a_flux_lora_is_400_with_genuine_error(ready_server, lora_dir):
    import torch
    from safetensors.torch import save_file

    folder = lora_dir / "not-flux"
    folder.mkdir(exist_ok=True)
    save_file({"unet.down.lora_A.weight": torch.zeros(2, 2)},
              str(folder / "pytorch_lora_weights.safetensors"))
    response = ready_server.client.post("/apply-lora", json={"source": "not-flux"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"]
    assert ready_server.client.get("/lora-status").json()["active"] is False


def test_real_lora_changes_the_image_and_removal_restores_it(ready_server, tiny_dir, lora_dir):
    from flux_server.tiny import save_tiny_lora

    lora_dir = save_tiny_lora(tiny_dir, lora_dir / "tiny-lora")
    base = _generate(ready_server, seed=77).content
    applied = ready_server.client.post("/apply-lora", json={
        "source": str(lora_dir), "weight": 1.0, "adapter_name": "style"})
    assert applied.status_code == 200, applied.text
    status = ready_server.client.get("/lora-status").json()
    assert status["active"] and status["adapters"][0]["name"] == "style"
    with_lora = _generate(ready_server, seed=77).content
    assert with_lora != base
    removed = ready_server.client.post("/remove-lora", json={"adapter_name": "style"})
    assert removed.status_code == 200 and removed.json()["active"] is False
    assert _generate(ready_server, seed=77).content == base
    missing = ready_server.client.post("/remove-lora", json={"adapter_name": "style"})
    assert missing.status_code == 422


def test_no_token_value_in_responses_or_logs(ready_server, hub_names):
    assert hub_names["good_token"] not in ready_server.log_text()
    assert "hf_token_set" in ready_server.client.get("/model-status").text
