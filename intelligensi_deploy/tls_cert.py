"""The self-signed certificate `up` makes for a public endpoint (the `cryptography` package,
which paramiko already brings), and what doctor reads from a pinned one.

An EC P-256 key and a certificate for the VM's public IP, plus 127.0.0.1 and localhost (which
the SSH tunnel reaches), valid a year. The private key goes to the VM only (the server's
secrets volume); the record keeps the certificate (public) and its fingerprint (tls_pin.py).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from intelligensi_deploy.tls_pin import fingerprint

VALID_DAYS = 365
EXPIRY_WARNING_DAYS = 14


@dataclass(frozen=True)
class CertificatePair:
    """A new certificate (PEM text, for the record and clients) and its private key (PEM
    bytes, for the server only)."""

    cert_pem: str
    key_pem: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert_pem)


def make_certificate(public_ip: str, deployment: str, *, days: int = VALID_DAYS,
                     now: datetime.datetime | None = None) -> CertificatePair:
    """A self-signed certificate for `public_ip` (an address, or an SSH host's name) and
    127.0.0.1 and localhost."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"fluxdeploy {deployment}")])
    alt_names: list[x509.GeneralName] = []
    for name_or_ip in dict.fromkeys([public_ip, "127.0.0.1", "localhost"]):
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name_or_ip)))
        except ValueError:  # an SSH host given by name
            alt_names.append(x509.DNSName(name_or_ip))
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return CertificatePair(cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
                           key_pem)


def expires_at(cert_pem: str) -> datetime.datetime:
    """When the certificate stops being valid (UTC)."""
    return x509.load_pem_x509_certificate(cert_pem.encode("ascii")).not_valid_after_utc


def names(cert_pem: str) -> list[str]:
    """The addresses and host names the certificate is valid for."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [*(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
            *san.get_values_for_type(x509.DNSName)]


def fits(cert_pem: str, public_ip: str, *, min_days: int = 30,
         now: datetime.datetime | None = None) -> bool:
    """Whether a certificate can be kept for `public_ip`: it names it and has `min_days` left."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return public_ip in names(cert_pem) and \
        expires_at(cert_pem) - now >= datetime.timedelta(days=min_days)
