"""/openapi.json says exactly what the server returns.

The schema is read in-process for what a client relies on (the server's own 422 body, the
400 of /apply-lora, /metrics' content type, Retry-After on 429 and 503), and schemathesis
4.32 runs against a real tiny server with every check on: its answers must conform to the
schema, schema-valid requests must be accepted and invalid ones refused. It runs with API
keys on (FLUX_API_KEYS_FILE) and the key in its header: the bearer scheme is declared, and
its `ignored_auth` check proves that the protected operations refuse a request without it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from flux_server.app import create_app
from flux_server.config import Settings

HERE = Path(__file__).resolve().parent
MAX_SIDE = 128  # small: schemathesis' largest images stay cheap
MAX_IMAGES = 2
EXAMPLES_PER_OPERATION = 20
GENERATION_ROUTES = ("/generate", "/v1/images/generations")
API_KEY = "schemathesis-key-0123456789abcdef"


@pytest.fixture(scope="module")
def schema() -> dict:
    app = create_app(Settings(model="tiny", max_side=MAX_SIDE, max_images=MAX_IMAGES))
    return TestClient(app).get("/openapi.json").json()


def _operations(schema: dict):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_every_422_is_the_servers_own_body(schema):
    assert "HTTPValidationError" not in str(schema)
    for path, method, operation in _operations(schema):
        if "requestBody" in operation:
            ref = operation["responses"]["422"]["content"]["application/json"]["schema"]
            assert ref == {"$ref": "#/components/schemas/ValidationErrorBody"}, (path, method)
    body = schema["components"]["schemas"]["ValidationErrorBody"]
    assert set(body["required"]) == {"error", "detail"}


def test_retry_after_on_429_and_503_of_the_generation_routes(schema):
    for path in GENERATION_ROUTES:
        responses = schema["paths"][path]["post"]["responses"]
        assert responses["429"]["headers"]["Retry-After"]["required"] is True
        # 503: absent only when the model failed to load (terminal)
        assert "terminal" in responses["503"]["headers"]["Retry-After"]["description"]
        assert "x-should-retry" in responses["504"]["headers"]
        assert {"200", "422", "429", "503", "504"} <= set(responses)


def test_the_schema_states_the_work_budget_and_both_deadlines(schema):
    for path in GENERATION_ROUTES:
        operation = schema["paths"][path]["post"]
        for said in ("FLUX_MAX_WORK=40", "FLUX_QUEUE_TIMEOUT=120s", "FLUX_RUN_TIMEOUT=300s"):
            assert said in operation["description"], (path, said)
        assert "FLUX_MAX_WORK=40" in operation["responses"]["422"]["description"]


def test_lora_400_metrics_content_type_and_limits(schema):
    assert "400" in schema["paths"]["/apply-lora"]["post"]["responses"]
    metrics = schema["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain; version=0.0.4; charset=utf-8"]
    width = schema["components"]["schemas"]["GenerateRequest"]["properties"]["width"]
    assert {"type": "integer", "minimum": 64, "maximum": MAX_SIDE,
            "multipleOf": 16}.items() <= width["anyOf"][0].items()
    n = schema["components"]["schemas"]["OpenAIImageRequest"]["properties"]["n"]
    assert n["maximum"] == MAX_IMAGES


def test_answers_match_the_documented_bodies(schema):
    """A 422, a 503 and /metrics from the app, checked against the schema it publishes."""
    import jsonschema

    client = TestClient(create_app(Settings(model="tiny", max_side=MAX_SIDE)))
    components = {"components": schema["components"]}

    def check(response, path: str, method: str = "post") -> None:
        spec = schema["paths"][path][method]["responses"][str(response.status_code)]
        media = response.headers["content-type"]
        assert media in spec["content"], (media, list(spec["content"]))
        for name, header in spec.get("headers", {}).items():
            assert not header["required"] or name in response.headers, name
        if media == "application/json":
            jsonschema.validate(response.json(), {**spec["content"][media]["schema"],
                                                  **components})

    check(client.post("/generate", json={"prompt": 1}), "/generate")
    check(client.post("/generate", content=b"\xff\xfe", headers={
        "content-type": "application/json"}), "/generate")  # bytes that are not UTF-8: 422
    check(client.post("/generate", json={"prompt": "x"}), "/generate")  # 503: not ready
    check(client.get("/ready"), "/ready", "get")
    check(client.get("/metrics"), "/metrics", "get")


def test_schemathesis_finds_no_failure_with_every_check(start_server, tmp_path):
    keys_file = tmp_path / "api-keys"
    keys_file.write_text(f"{API_KEY}\n")
    server = start_server("schemathesis", FLUX_MODEL="tiny", FLUX_MAX_SIDE=str(MAX_SIDE),
                          FLUX_MAX_IMAGES=str(MAX_IMAGES), HF_HUB_OFFLINE="1",
                          FLUX_API_KEYS_FILE=str(keys_file))
    assert server.wait_state("ready", "failed")["state"] == "ready"
    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli",
         "--config-file", str(HERE / "schemathesis.toml"),
         "run", f"{server.url}/openapi.json", "--checks", "all",
         "--header", f"Authorization: Bearer {API_KEY}",
         "--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", "1", "--workers", "1",
         "--request-timeout", "60", "--no-color"],
        capture_output=True, text=True, timeout=240, check=False,
        cwd=tmp_path)  # its .hypothesis/ database stays out of the repository
    output = run.stdout + run.stderr
    print(output[-2500:])
    assert run.returncode == 0, output[-8000:]
    assert "Tested: 11" in output and "failures" not in output.splitlines()[-1]
