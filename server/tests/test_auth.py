"""API keys (FLUX_API_KEYS_FILE) in-process: the keys file, the 401s, what stays open, what
/ready still says, the bearer scheme in /openapi.json and the key kept out of every log line.

The real-process checks (SIGHUP, the OpenAI SDK, the log file) are in test_auth_process.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from flux_server.app import create_app
from flux_server.auth import (
    ApiKeys,
    ApiKeysUnreadable,
    bearer_token,
    key_matches,
    needs_key,
    parse_keys,
)
from flux_server.auth_http import HIDDEN, public_ready
from flux_server.config import Settings, settings_from_env
from flux_server.redact import RedactingFilter
from flux_server.state import Failure

KEY_A = "fluxkey-alpha-0123456789abcdef"
KEY_B = "fluxkey-bravo-0123456789abcdef"
WRONG = "fluxkey-wrong-0123456789abcdef"
PROTECTED = [("post", "/generate", {"prompt": "x"}),
             ("post", "/v1/images/generations", {"prompt": "x"}),
             ("post", "/apply-lora", {"source": "/x"}),
             ("post", "/remove-lora", {}),
             ("get", "/lora-status", None),
             ("get", "/model-status", None),
             ("get", "/metrics", None)]
OPEN = ["/health", "/ready", "/", "/page/app.js", "/page/auth.js", "/openapi.json", "/docs"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _keys_file(tmp_path: Path, *keys: str, name: str = "keys") -> Path:
    path = tmp_path / name
    path.write_text("# fluxdeploy API keys\n\n" + "".join(f"{k}\n" for k in keys))
    return path


def _call(client: TestClient, method: str, path: str, body: dict | None,
          headers: dict[str, str] | None = None):
    if method == "post":
        return client.post(path, json=body, headers=headers)
    return client.get(path, headers=headers)


@pytest.fixture
def keyed(tmp_path):
    """An app with two keys (no lifespan: the model never loads) and its keys file."""
    path = _keys_file(tmp_path, KEY_A, KEY_B)
    keys = ApiKeys(str(path), clock=FakeClock())
    app = create_app(Settings(model="tiny", api_keys_file=str(path)), api_keys=keys)
    return TestClient(app), path, keys


# ---- the keys file and the check (pure) --------------------------------------------------

def test_parse_keys_skips_blanks_comments_and_duplicates():
    text = f"# laptop\n{KEY_A}\n\n  {KEY_B}  \n# {WRONG}\n{KEY_A}\n"
    assert parse_keys(text) == (KEY_A.encode(), KEY_B.encode())


@pytest.mark.parametrize("text,words", [
    ("", "no key"), ("# only a comment\n\n", "no key"),
    ("short\n", "line 1"), (f"# c\n{KEY_A} laptop\n", "line 2"), ("kéy-0123456789abcdef", "ASCII"),
])
def test_parse_keys_refuses_what_is_not_a_key_without_quoting_it(text, words):
    with pytest.raises(ApiKeysUnreadable) as caught:
        parse_keys(text)
    assert words in str(caught.value)
    assert KEY_A not in str(caught.value) and "short" not in str(caught.value)


@pytest.mark.parametrize("header,token", [
    (None, None), (b"", None), (b"Bearer", None), (b"Bearer   ", None), (b"Basic abc", None),
    (b"Bearer abc", b"abc"), (b"bearer  abc ", b"abc"),
])
def test_bearer_token(header, token):
    assert bearer_token(header) == token


def test_key_matches_any_key_and_nothing_else():
    keys = (KEY_A.encode(), KEY_B.encode())
    assert key_matches(KEY_A.encode(), keys) and key_matches(KEY_B.encode(), keys)
    assert not key_matches(WRONG.encode(), keys)
    assert not key_matches(None, keys) and not key_matches(b"", keys)
    assert not key_matches(KEY_A.encode(), ())


def test_needs_key_protects_every_path_but_the_open_ones():
    for path in OPEN:
        assert not needs_key(path, False), path
    for _method, path, _body in PROTECTED:
        assert needs_key(path, False), path
    assert needs_key("/some-route-added-later", False)
    assert not needs_key("/metrics", True)


def test_file_change_is_seen_within_a_second_and_sighup_at_once(tmp_path):
    path = _keys_file(tmp_path, KEY_A, KEY_B)
    clock = FakeClock()
    keys = ApiKeys(str(path), clock=clock)
    keys.reload()
    assert keys.allows(_bearer(KEY_A)["Authorization"].encode())
    path.write_text(f"{KEY_B}\n{WRONG}\n")  # a new file content (size differs)
    assert keys.allows(f"Bearer {KEY_A}".encode())  # looked at less than a second ago
    clock.now += 1.01
    assert not keys.allows(f"Bearer {KEY_A}".encode())
    assert keys.allows(f"Bearer {WRONG}".encode())
    path.write_text(f"{KEY_A}\n")
    keys.request_reload()  # what SIGHUP does: no wait for the interval
    assert keys.allows(f"Bearer {KEY_A}".encode())


def test_a_file_that_breaks_at_run_time_fails_closed_until_fixed(tmp_path, caplog):
    path = _keys_file(tmp_path, KEY_A)
    keys = ApiKeys(str(path), clock=FakeClock())
    keys.reload()
    path.write_text("# emptied\n")
    with caplog.at_level(logging.ERROR, "flux_server.auth"):
        keys.request_reload()
        assert not keys.allows(f"Bearer {KEY_A}".encode())
    assert keys.error is not None and keys.startup_error is None
    assert "holds no key" in caplog.text
    path.write_text(f"{KEY_A}\n")
    keys.request_reload()
    assert keys.allows(f"Bearer {KEY_A}".encode()) and keys.error is None


def test_settings_read_the_keys_file_and_metrics_public():
    settings = settings_from_env({"FLUX_API_KEYS_FILE": " /run/keys ", "FLUX_METRICS_PUBLIC": "1"})
    assert settings.api_keys_file == "/run/keys" and settings.metrics_public
    assert settings_from_env({}).api_keys_file is None
    assert not settings_from_env({}).metrics_public


def test_a_bad_setting_elsewhere_keeps_the_keys_on(monkeypatch):
    from flux_server.main import _settings

    monkeypatch.setenv("FLUX_MEMORY", "lots")
    monkeypatch.setenv("FLUX_API_KEYS_FILE", "/run/keys")
    settings, error = _settings()
    assert error is not None and settings.api_keys_file == "/run/keys"


def test_the_log_filter_redacts_the_current_keys():
    current = [KEY_A]
    flt = RedactingFilter(["hf_secretsecret123"], [lambda: current])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "saw %s and %s", (KEY_A, KEY_B),
                               None)
    flt.filter(record)
    assert KEY_A not in record.getMessage() and KEY_B in record.getMessage()
    current.append(KEY_B)  # a key added by a re-read is redacted from then on
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "saw %s", (KEY_B,), None)
    flt.filter(record)
    assert record.getMessage() == "saw ***"


# ---- the routes --------------------------------------------------------------------------

@pytest.mark.parametrize("method,path,body", PROTECTED)
@pytest.mark.parametrize("headers", [None, _bearer(WRONG), {"Authorization": KEY_A},
                                     {"Authorization": f"Basic {KEY_A}"}],
                         ids=["no-key", "wrong-key", "no-scheme", "basic"])
def test_protected_routes_answer_401_with_the_usual_error_body(keyed, method, path, body,
                                                               headers):
    client, _path, _keys = keyed
    response = _call(client, method, path, body, headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    error = response.json()["error"]
    assert error["type"] == "Unauthorized" and error["message"] and error["hint"]
    assert KEY_A not in response.text and "x-request-id" in response.headers


@pytest.mark.parametrize("key", [KEY_A, KEY_B])
@pytest.mark.parametrize("method,path,body", PROTECTED)
def test_each_valid_key_gets_through(keyed, key, method, path, body):
    client, _path, _keys = keyed
    response = _call(client, method, path, body, _bearer(key))
    assert response.status_code != 401
    # not loaded (no lifespan): the generation and LoRA routes say so, the others answer
    expected = 503 if path in ("/generate", "/v1/images/generations", "/apply-lora",
                               "/remove-lora") else 200
    assert response.status_code == expected, response.text


@pytest.mark.parametrize("path", OPEN)
def test_probes_page_and_schema_stay_open(keyed, path):
    client, _path, _keys = keyed
    assert client.get(path).status_code in (200, 503)  # /ready: 503 while not loaded


def test_a_revoked_key_is_refused_after_the_file_changes(keyed):
    client, path, keys = keyed
    assert client.get("/model-status", headers=_bearer(KEY_A)).status_code == 200
    path.write_text(f"{KEY_B}\n")
    keys.request_reload()
    response = client.get("/model-status", headers=_bearer(KEY_A))
    assert response.status_code == 401 and 'error="invalid_token"' in \
        response.headers["WWW-Authenticate"]
    assert client.get("/model-status", headers=_bearer(KEY_B)).status_code == 200


def test_metrics_public_opens_metrics_only(tmp_path):
    path = _keys_file(tmp_path, KEY_A)
    client = TestClient(create_app(Settings(model="tiny", api_keys_file=str(path),
                                            metrics_public=True)))
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and KEY_A not in metrics.text
    assert client.get("/model-status").status_code == 401


def test_a_thousand_wrong_keys_get_a_thousand_401s(keyed):
    client, _path, _keys = keyed
    statuses = [client.get("/model-status", headers=_bearer(f"{WRONG}{i}")).status_code
                for i in range(1000)]
    assert statuses == [401] * 1000
    metrics = client.get("/metrics", headers=_bearer(KEY_A)).text
    assert 'flux_requests_unauthorized_total{reason="rejected"} 1000.0' in metrics
    assert client.get("/model-status", headers=_bearer(KEY_A)).status_code == 200


def test_no_key_in_any_log_line(keyed, caplog):
    client, _path, _keys = keyed
    with caplog.at_level(logging.DEBUG):
        for key in (KEY_A, KEY_B, WRONG):
            client.get("/model-status", headers=_bearer(key))
            client.post("/generate", json={"prompt": "x"}, headers=_bearer(key))
    lines = caplog.text
    assert "route=/model-status status=401" in lines and "auth=rejected" in lines
    for key in (KEY_A, KEY_B, WRONG):
        assert key not in lines
    assert "authorization" not in lines.lower()


# ---- /ready while keys are on, and a keys file that cannot be read at start --------------

def test_ready_hides_the_model_path_and_error_details(tmp_path):
    path = _keys_file(tmp_path, KEY_A)
    model = str(tmp_path / "private-models" / "flux-dev")
    app = create_app(Settings(model=model, api_keys_file=str(path)))
    app.state.service.state.fail(Failure("ModelPathNotFound", f"nothing at {model}",
                                         "set HF_TOKEN and mount the model"))
    body = TestClient(app).get("/ready").json()
    assert body["model"] == HIDDEN and body["state"] == "failed"
    assert body["error"]["type"] == "ModelPathNotFound"
    assert "private-models" not in str(body) and "HF_TOKEN" not in str(body)
    status = TestClient(app).get("/model-status", headers=_bearer(KEY_A)).json()
    assert status["model"] == model  # the details, for whoever holds a key
    assert TestClient(create_app(Settings(model=model))).get("/ready").json()["model"] == model


def test_public_ready_strips_a_clusters_replica_errors():
    body = {"state": "loading", "ready": False, "model": "/models/x", "error": None,
            "cluster": {"ready": "0/2", "replicas": [
                {"replica": "r1", "state": "failed", "error": {
                    "type": "LoraError", "message": "no LoRA at /loras/secret", "hint": "x"}},
                {"replica": "r2", "state": "loading", "error": None}],
                "serve": {"status": "RUNNING", "message": "at /models/x"}}}
    out = public_ready(body)
    assert "/models/x" not in str(out) and "/loras/secret" not in str(out)
    assert [r["state"] for r in out["cluster"]["replicas"]] == ["failed", "loading"]
    assert out["cluster"]["replicas"][0]["error"]["type"] == "LoraError"
    assert out["cluster"]["serve"] == {"status": "RUNNING"}


@pytest.mark.parametrize("make", [
    lambda tmp: tmp / "missing", lambda tmp: tmp,  # absent, a directory (unreadable)
    lambda tmp: _keys_file(tmp, name="empty"), lambda tmp: _keys_file(tmp, "short", name="bad"),
], ids=["missing", "unreadable", "empty", "malformed"])
def test_an_unusable_keys_file_refuses_to_serve(tmp_path, make, caplog):
    path = make(tmp_path)
    with caplog.at_level(logging.ERROR), \
            TestClient(create_app(Settings(model="tiny", api_keys_file=str(path)))) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        body = ready.json()
        assert body["state"] == "failed" and body["error"]["type"] == "ApiKeysUnreadable"
        assert "FLUX_API_KEYS_FILE" in body["error"]["message"] + body["error"]["hint"]
        for method, route, request_body in PROTECTED:
            response = _call(client, method, route, request_body, _bearer(KEY_A))
            assert response.status_code == 401, route
        assert client.get("/health").status_code == 200
        assert client.app.state.service.loader.thread is None  # type: ignore[attr-defined]
    assert "not loading the model" in caplog.text and str(path) in caplog.text


# ---- /openapi.json -----------------------------------------------------------------------

def test_openapi_declares_the_bearer_scheme_only_with_keys(keyed):
    client, _path, _keys = keyed
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"] == {"bearerAuth": {
        "type": "http", "scheme": "bearer", "description": schema["components"][
            "securitySchemes"]["bearerAuth"]["description"]}}
    for _method, path, _body in PROTECTED:
        for operation in schema["paths"][path].values():
            assert operation["security"] == [{"bearerAuth": []}], path
            assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
    for path in ("/health", "/ready"):
        assert "security" not in schema["paths"][path]["get"]
        assert "401" not in schema["paths"][path]["get"]["responses"]
    plain = TestClient(create_app(Settings(model="tiny"))).get("/openapi.json").json()
    assert "securitySchemes" not in plain["components"] and "401" not in str(plain["paths"])
