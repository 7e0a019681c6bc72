"""TLS for a public endpoint: the certificate `up` makes, the pin, and a client that trusts
the pinned certificate only (a real TLS server on the loopback, in a thread)."""

from __future__ import annotations

import datetime
import http.server
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from intelligensi_deploy.endpoint import Endpoint
from intelligensi_deploy.tls_cert import CertificatePair, expires_at, fits, make_certificate, names
from intelligensi_deploy.tls_pin import (
    CertificateChanged,
    ServerTls,
    fingerprint,
    presented_certificate,
)


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def https_server(pair: CertificatePair, tmp: Path) -> Iterator[int]:
    (tmp / "c.pem").write_text(pair.cert_pem)
    (tmp / "k.pem").write_bytes(pair.key_pem)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp / "c.pem", tmp / "k.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_the_certificate_names_the_vm_and_the_tunnels_end_and_lasts_a_year() -> None:
    now = datetime.datetime(2026, 12, 3, tzinfo=datetime.timezone.utc)
    pair = make_certificate("203.0.113.7", "web", now=now)
    assert names(pair.cert_pem) == ["203.0.113.7", "127.0.0.1", "localhost"]
    assert expires_at(pair.cert_pem) == now + datetime.timedelta(days=365)
    assert b"PRIVATE KEY" in pair.key_pem and "PRIVATE" not in pair.cert_pem
    assert fits(pair.cert_pem, "203.0.113.7", now=now)
    assert not fits(pair.cert_pem, "198.51.100.1", now=now)  # another VM's address
    assert not fits(pair.cert_pem, "203.0.113.7", now=now + datetime.timedelta(days=340))
    assert "gpu.example.org" in names(make_certificate("gpu.example.org", "web").cert_pem)


def test_the_fingerprint_is_openssls_sha256_form() -> None:
    fp = make_certificate("203.0.113.7", "web").fingerprint
    assert fp.startswith("SHA256:") and len(fp.split(":")) == 33
    assert fp != make_certificate("203.0.113.7", "web").fingerprint


def test_the_pinned_certificate_is_trusted_and_nothing_else(tmp_path: Path) -> None:
    pinned = make_certificate("127.0.0.1", "web")
    with https_server(pinned, tmp_path) as port:
        good = Endpoint.loopback(port, ServerTls("web", pinned.cert_pem, pinned.fingerprint))
        assert good.get("/health", timeout=5).status_code == 200
        assert presented_certificate("127.0.0.1", port) == pinned.fingerprint
        with pytest.raises(httpx.ConnectError):  # the system's trust knows no self-signed one
            Endpoint(f"https://127.0.0.1:{port}").get("/health", timeout=5)
    swapped = make_certificate("127.0.0.1", "web")
    with https_server(swapped, tmp_path) as port:
        pin = Endpoint.loopback(port, ServerTls("web", pinned.cert_pem, pinned.fingerprint))
        with pytest.raises(CertificateChanged) as caught:
            pin.get("/health", timeout=5)
    text = caught.value.message
    assert pinned.fingerprint in text and swapped.fingerprint in text
    assert "up --force" in (caught.value.fix or "")


def test_fingerprint_of_a_pem_matches_the_pair() -> None:
    pair = make_certificate("203.0.113.7", "web")
    assert fingerprint(pair.cert_pem) == pair.fingerprint
