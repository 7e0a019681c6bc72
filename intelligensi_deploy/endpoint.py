"""How a client reaches a deployment's server: a base URL and, for HTTPS, the pinned
certificate (tls_pin.py). Every request fluxdeploy sends to a server goes through
`Endpoint`, so that a certificate other than the pinned one is refused in one place, with
both fingerprints, whatever the command."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from intelligensi_deploy.tls_pin import (
    ServerTls,
    changed_error,
    pinned_context,
    presented_certificate,
)

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True)
class Endpoint:
    """A server's base URL (no trailing slash) and how to trust it."""

    base: str
    tls: ServerTls | None = None

    @classmethod
    def loopback(cls, port: int, tls: ServerTls | None = None) -> Endpoint:
        """This machine's 127.0.0.1:port (a tunnel's end, or a local server)."""
        return cls(f"{'https' if tls else 'http'}://127.0.0.1:{port}", tls)

    def url(self, path: str) -> str:
        return self.base + path

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """httpx's `verify`: the pinned certificate only, or the system's trust for HTTP."""
        return pinned_context(self.tls.cert_pem) if self.tls else True

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; a certificate that is not the pinned one raises CertificateChanged
        (before anything, a key or a prompt, was sent)."""
        import httpx  # lazy: httpx, for the commands that send a request

        try:
            return httpx.request(method, self.url(path), verify=self.verify, **kwargs)
        except httpx.ConnectError as exc:
            if self.tls is not None and _certificate_refused(exc):
                where = urlsplit(self.base)
                seen = presented_certificate(where.hostname or "127.0.0.1", where.port or 443)
                raise changed_error(self.tls.deployment, self.tls.fingerprint, seen) from None
            raise


def _certificate_refused(exc: BaseException) -> bool:
    """Whether the failure (or what caused it) is a certificate the client would not trust."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)
