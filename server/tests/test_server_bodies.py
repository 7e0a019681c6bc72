"""Careless and hostile bodies against a real server: the size limit before parsing, one
error shape for every answer, bodies that are not JSON named as such, and HEAD /health."""

from __future__ import annotations

import json

import httpx

LIMIT = 1024 * 1024  # FLUX_MAX_BODY_BYTES' default


def _error(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body["error"]) == {"type", "message", "hint"}, body
    return body["error"]


def test_a_body_over_the_limit_is_413_from_its_content_length(ready_server):
    body = b'{"prompt": "' + b"a" * (2 * LIMIT) + b'"}'
    response = ready_server.client.post("/generate", content=body,
                                        headers={"content-type": "application/json"})
    assert response.status_code == 413
    error = _error(response)
    assert error["type"] == "BodyTooLarge"
    assert f"FLUX_MAX_BODY_BYTES={LIMIT}" in error["message"] and str(len(body)) in error["message"]
    assert response.headers["x-should-retry"] == "false"


def test_a_streamed_body_is_cut_off_at_the_limit(ready_server):
    def chunks():
        for _ in range(64):  # 4 MB in 64 kB pieces, no Content-Length
            yield b"a" * 65536

    try:
        response = ready_server.client.post("/generate", content=chunks(), headers={
            "content-type": "application/json", "X-Request-Id": "chunked-body"})
    except httpx.TransportError:  # the server may close before the client stops sending
        response = None
    if response is not None:
        assert response.status_code == 413
        assert "more than" in _error(response)["message"]
    ready_server.wait_for(lambda: "request id=chunked-body route=/generate status=413"
                          in ready_server.log_text(), timeout=30, what="the 413 logged")


def test_a_body_within_the_limit_is_parsed_as_before(ready_server):
    response = ready_server.client.post("/generate", json={"prompt": "a" * 20_000})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "prompt"


def test_bodies_that_are_not_json_say_what_is_wrong(ready_server):
    cases = {
        b'{"prompt": "x",, }': "is not valid JSON: Expecting property name",
        b"\xff\xfe{}": "is not UTF-8 text (byte 0 is invalid)",
        b'{"prompt": "caf\xe9"}': "is not UTF-8 text (byte 15 is invalid)",
        b"[" * 100_000 + b"]" * 100_000: "is nested too deeply",
    }
    for body, said in cases.items():
        response = ready_server.client.post("/generate", content=body,
                                            headers={"content-type": "application/json"})
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert [d["field"] for d in detail] == ["body"], detail
        assert said in detail[0]["rule"], (said, detail)
        assert response.headers["x-should-retry"] == "false"


def test_routing_errors_have_the_same_shape(ready_server):
    missing = ready_server.client.get("/no-such-route")
    assert missing.status_code == 404
    assert _error(missing)["type"] == "NotFound" and "/no-such-route" in missing.text
    wrong = ready_server.client.delete("/generate")
    assert wrong.status_code == 405
    assert _error(wrong)["type"] == "MethodNotAllowed"
    assert wrong.headers["allow"] == "POST"


def test_head_health_answers_like_get(ready_server):
    head = ready_server.client.head("/health")
    assert head.status_code == 200 and head.content == b""
    assert ready_server.client.get("/health").json() == {"status": "ok"}


def test_the_schema_documents_413_404_and_405(ready_server):
    schema = ready_server.client.get("/openapi.json").json()
    for path in ("/generate", "/v1/images/generations", "/apply-lora"):
        assert "413" in schema["paths"][path]["post"]["responses"], path
    assert {"NotFound", "MethodNotAllowed"} <= set(schema["components"]["responses"])
    assert "head" in schema["paths"]["/health"]
    json.dumps(schema)
