"""Pinning a deployment's TLS certificate, the way its SSH host key is pinned.

The record keeps the certificate `up` made (tls_cert.py) and its SHA-256 fingerprint. Every
client of the deployment trusts that one certificate and nothing else; a server that presents
another is refused with both fingerprints, as a changed host key is. Standard library only:
`status` and the other quick commands load it.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from dataclasses import dataclass

from intelligensi_deploy.errors import FluxdeployError


@dataclass(frozen=True)
class ServerTls:
    """The certificate a deployment's server presents, as pinned in its record."""

    deployment: str
    cert_pem: str
    fingerprint: str


def fingerprint(cert_pem: str) -> str:
    """`SHA256:AB:CD:...`, as `openssl x509 -fingerprint -sha256` writes it."""
    der = ssl.PEM_cert_to_DER_cert(cert_pem)
    return fingerprint_der(der)


def fingerprint_der(der: bytes) -> str:
    digest = hashlib.sha256(der).hexdigest().upper()
    return "SHA256:" + ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def pinned_context(cert_pem: str) -> ssl.SSLContext:
    """A client context that trusts this one certificate only (and checks the address)."""
    return ssl.create_default_context(cadata=cert_pem)


class CertificateChanged(FluxdeployError):
    """The server presented a certificate other than the pinned one."""


def presented_certificate(host: str, port: int, timeout: float = 5.0) -> str | None:
    """The fingerprint of the certificate the server at host:port presents (unverified: to
    name it in an error), None when it cannot be read."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw) as wrapped:
            der = wrapped.getpeercert(binary_form=True)
    except OSError:
        return None
    return fingerprint_der(der) if der else None


def changed_error(deployment: str, pinned: str, presented: str | None) -> CertificateChanged:
    """The refusal of a certificate that is not the pinned one, with both fingerprints."""
    seen = presented or "one that could not be read"
    return CertificateChanged(
        f"The TLS certificate of deployment {deployment!r} changed: the record pins "
        f"{pinned}, the server presented {seen}. Someone may be in between, or the "
        "certificate was replaced on the VM.",
        fix="If you replaced it yourself, `fluxdeploy up --force` makes a new certificate and "
        "pins it. Otherwise do not send the API key or prompts there: check the VM "
        "(`fluxdeploy doctor`).",
        doc="tls")
