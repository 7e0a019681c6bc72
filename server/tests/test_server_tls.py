"""The server's TLS settings: both files or neither, readable, and the loopback probes'
scheme (the HEALTHCHECK and the watchdog speak HTTPS when the server does)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flux_server.healthcheck import probe
from flux_server.tls import TlsSettingsError, loopback_url, serves_https, uvicorn_options


def test_plain_http_without_the_variables() -> None:
    assert uvicorn_options({}) == {}
    assert loopback_url({}, 8000, "/health") == "http://127.0.0.1:8000/health"


def test_both_files_give_uvicorns_options_and_https_probes(tmp_path: Path) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_text("x")
    key.write_text("x")
    env = {"FLUX_TLS_CERT_FILE": str(cert), "FLUX_TLS_KEY_FILE": str(key)}
    assert uvicorn_options(env) == {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    assert loopback_url(env, 8000, "/health") == "https://127.0.0.1:8000/health"
    assert serves_https({"FLUX_SERVER_TLS": "1"}) and not serves_https({"FLUX_SERVER_TLS": ""})


def test_half_set_or_unreadable_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(TlsSettingsError, match="FLUX_TLS_KEY_FILE is not set"):
        uvicorn_options({"FLUX_TLS_CERT_FILE": "/x.crt"})
    with pytest.raises(TlsSettingsError, match="FLUX_TLS_CERT_FILE=.*can read"):
        uvicorn_options({"FLUX_TLS_CERT_FILE": str(tmp_path / "missing.crt"),
                         "FLUX_TLS_KEY_FILE": str(tmp_path / "missing.key")})


def test_the_healthcheck_probes_https_when_the_server_does(tmp_path: Path) -> None:
    env = {"PORT": "1", "FLUX_TLS_CERT_FILE": "/c", "FLUX_TLS_KEY_FILE": "/k"}
    assert (probe(env) or "").startswith("https://127.0.0.1:1/health")
