"""The routes in-process with a stand-in pipeline: errors inside a generation become clear
answers and never take the server down."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from flux_server.app import create_app
from flux_server.config import Settings


class FailingPipeline:
    """Raises `error` when called, like a pipeline that runs out of memory mid-generation."""

    vae_scale_factor = 1

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    def __call__(self, **kwargs):
        self.calls += 1
        raise self.error


def _ready_app(pipe) -> TestClient:
    app = create_app(Settings(model="tiny", hf_token="hf_secretsecret123"))
    service = app.state.service
    for state in ("loading", "warming", "ready"):
        service.state.advance(state)
    service.loader.pipeline = pipe
    return TestClient(app)  # no lifespan: the real loader never starts


@pytest.mark.parametrize("error,expected_type,hint", [
    (RuntimeError("CUDA out of memory. Tried to allocate 9.00 GiB"), "GenerationOutOfMemory",
     "lower width"),
    (ValueError("bad shape with hf_secretsecret123"), "ValueError", "server log"),
])
def test_generation_errors_are_500_with_reason_and_server_goes_on(error, expected_type, hint):
    pipe = FailingPipeline(error)
    client = _ready_app(pipe)
    response = client.post("/generate", json={"prompt": "x", "seed": 1})
    assert response.status_code == 500
    body = response.json()["error"]
    assert body["type"] == expected_type and hint in body["hint"]
    assert "hf_secretsecret123" not in response.text
    assert client.get("/health").status_code == 200
    again = client.post("/generate", json={"prompt": "x"})
    assert again.status_code == 500 and pipe.calls == 2  # the worker is still there


def test_not_ready_answers_503_with_retry_after():
    app = create_app(Settings(model="tiny"))
    client = TestClient(app)
    for route, body in (("/generate", {"prompt": "x"}),
                        ("/v1/images/generations", {"prompt": "x"}),
                        ("/apply-lora", {"source": "/x"})):
        response = client.post(route, json=body)
        assert response.status_code == 503 and response.headers["Retry-After"]
    ready = client.get("/ready")
    assert ready.status_code == 503 and ready.json()["state"] == "starting"
