"""`up`'s TLS step for a public endpoint: the server's certificate and key in its secrets
volume, and the certificate pinned in the record.

A certificate already in the volume is kept while it names the VM's address and has a month
left, so a redeploy does not make clients trust a new one. It is read back through the SSH
connection, whose host key is pinned: what is read is what the VM holds. Otherwise a new pair
is made here (tls_cert.py); the private key goes to the volume only (0600, the server's user),
never to this machine's disk or output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from intelligensi_deploy import names
from intelligensi_deploy.deploy.reporter import Reporter
from intelligensi_deploy.remote.docker import Docker
from intelligensi_deploy.remote.secret_volume import read_public_file, write_secret
from intelligensi_deploy.state import Tracker
from intelligensi_deploy.tls_cert import expires_at, fits, make_certificate
from intelligensi_deploy.tls_pin import ServerTls, fingerprint


def running_certificate(docker: Docker, container: str) -> str | None:
    """The certificate the running `container` serves with (read from its mounted secrets
    volume), None when it has none."""
    result = docker.run_docker(["exec", container, "cat",
                                f"{names.SECRETS_MOUNT}/{names.TLS_CERT_FILE}"], timeout=60)
    return result.stdout if result.ok and "BEGIN CERTIFICATE" in result.stdout else None


def pin(tracker: Tracker, cert_pem: str | None) -> None:
    """Record `cert_pem` (None: plain HTTP) as the deployment's pinned certificate."""
    if cert_pem is None:
        tracker.update(tls_cert=None, tls_fingerprint=None, tls_expires_at=None)
        return
    tracker.update(tls_cert=cert_pem, tls_fingerprint=fingerprint(cert_pem),
                   tls_expires_at=expires_at(cert_pem).timestamp())


def server_certificate(tls: bool, tracker: Tracker, docker: Docker, ui: Reporter,
                       image: str) -> None:
    """With `tls` on, before the container starts: a certificate for the VM's address in the
    secrets volume (kept, or made and written), pinned in the record. Off: no pin."""
    if not tls:
        pin(tracker, None)
        return
    address = tracker.dep.ip or "127.0.0.1"
    volume = names.secrets_volume(tracker.dep.name)
    there = read_public_file(docker, image, volume, names.TLS_CERT_FILE,
                             requires=names.TLS_KEY_FILE)
    if there and fits(there, address):
        ui.step(f"TLS certificate for {address} kept ({fingerprint(there)})")
        pin(tracker, there)
        return
    pair = make_certificate(address, tracker.dep.name)
    ui.step(f"TLS: a new self-signed certificate for {address} ({pair.fingerprint}); its key "
            "goes to the server's secrets volume only")
    write_secret(docker, image, volume, names.TLS_KEY_FILE, pair.key_pem)
    write_secret(docker, image, volume, names.TLS_CERT_FILE, pair.cert_pem.encode("ascii"))
    pin(tracker, pair.cert_pem)


def running_tls(docker: Docker, container: str, found: Mapping[str, Any] | None
                ) -> ServerTls | None:
    """The pin of the certificate a running container serves with (its configuration names
    one), read through the pinned SSH connection: what `up` probes it with, and pins when it
    keeps the container (so a record made elsewhere, or lost, learns it). None: plain HTTP,
    or a certificate that cannot be read (the probe then finds the server unreachable)."""
    env = (found or {}).get("Config", {}).get("Env") or []
    if not any(str(item).startswith("FLUX_TLS_CERT_FILE=") for item in env):
        return None
    cert = running_certificate(docker, container)
    if cert is None:
        return None
    deployment = ((found or {}).get("Config", {}).get("Labels") or {}).get(
        names.DEPLOYMENT_LABEL, container)
    return ServerTls(str(deployment), cert, fingerprint(cert))
