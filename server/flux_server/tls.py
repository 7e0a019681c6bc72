"""HTTPS in the server process itself: uvicorn's `ssl_certfile` / `ssl_keyfile`.

FLUX_TLS_CERT_FILE and FLUX_TLS_KEY_FILE name the PEM files (fluxdeploy puts them in the
deployment's read-only secrets volume, the key 0600 and owned by the server's user). Chosen
over a proxy container in front: one process to start, signal and read logs from, no second
image or configuration language, and the API-key middleware sees the real client address.
The probes inside the image (the Docker HEALTHCHECK, the watchdog's `/ready` reads) speak
HTTPS to the loopback then, without verifying: they reach the server's own port on the same
machine, and carry no secret.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from typing import Any

CERT_VAR = "FLUX_TLS_CERT_FILE"
KEY_VAR = "FLUX_TLS_KEY_FILE"
SERVER_TLS_VAR = "FLUX_SERVER_TLS"  # for a process beside the server (the watchdog): "1"


class TlsSettingsError(ValueError):
    """The TLS variables are half set, or name files the server cannot read."""


def tls_files(env: Mapping[str, str]) -> tuple[str, str] | None:
    """(certificate, key) paths, or None for plain HTTP. Both or neither must be set, and
    both must be readable files."""
    cert, key = env.get(CERT_VAR, "").strip(), env.get(KEY_VAR, "").strip()
    if not cert and not key:
        return None
    if not (cert and key):
        missing = KEY_VAR if cert else CERT_VAR
        raise TlsSettingsError(f"{missing} is not set: HTTPS needs both {CERT_VAR} and "
                               f"{KEY_VAR} (PEM files), or neither for plain HTTP")
    for var, path in ((CERT_VAR, cert), (KEY_VAR, key)):
        if not os.access(path, os.R_OK):
            raise TlsSettingsError(f"{var}={path} is not a file this server (uid "
                                   f"{os.getuid()}) can read")
    return cert, key


def uvicorn_options(env: Mapping[str, str]) -> dict[str, Any]:
    """uvicorn.Config's TLS keywords (none for plain HTTP)."""
    files = tls_files(env)
    return {"ssl_certfile": files[0], "ssl_keyfile": files[1]} if files else {}


def serves_https(env: Mapping[str, str]) -> bool:
    """Whether the server of this container (or beside it: the watchdog) speaks HTTPS."""
    return bool(env.get(CERT_VAR, "").strip()) or env.get(SERVER_TLS_VAR, "") == "1"


def loopback_url(env: Mapping[str, str], port: int | str, path: str) -> str:
    """The URL of `path` on the server's own port of this machine."""
    scheme = "https" if serves_https(env) else "http"
    return f"{scheme}://127.0.0.1:{port}{path}"


def loopback_context() -> ssl.SSLContext:
    """A client context for the loopback probes: encrypted, not verified (the same machine;
    the certificate names the public address, and the probes send no secret)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
