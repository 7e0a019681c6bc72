"""SSH keys: host key fingerprints and pinning (trust on first use), and private key loading.

paramiko is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.remote.ssh_errors import SSHAuthError

if TYPE_CHECKING:  # pragma: no cover
    import paramiko

def fingerprint(host_key: str) -> str:
    """OpenSSH's SHA256 fingerprint ("SHA256:...") of a "type base64" public key line."""
    blob = base64.b64decode(host_key.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def key_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def parse_key_line(host_key: str) -> paramiko.PKey:
    import paramiko  # lazy: paramiko (~100 ms) only when a connection is made

    try:
        key_type, b64 = host_key.split()[:2]
        return paramiko.PKey.from_type_string(key_type, base64.b64decode(b64))
    except Exception as exc:  # any parse failure means the same thing
        raise FluxdeployError(
            f"The pinned SSH host key {host_key[:40]!r}... is not a valid public key line.",
            fix='Pin a key as "TYPE BASE64", e.g. "ssh-ed25519 AAAAC3Nza...".',
        ) from exc


def load_private_key(key_path: str) -> paramiko.PKey:
    import paramiko  # lazy: paramiko (~100 ms) only when a connection is made

    path = os.path.expanduser(key_path)
    if not os.path.exists(path):
        raise SSHAuthError(
            f"The SSH private key {key_path} does not exist.",
            fix="Set the preset's ssh key path to an existing private key (ed25519, rsa or "
            "ecdsa), or leave it empty to use your ssh-agent.",
            doc="ssh-auth",
        )
    try:
        return paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException as exc:
        raise SSHAuthError(
            f"The SSH private key {key_path} is protected by a passphrase.",
            fix=f"Load it into your agent (`ssh-add {key_path}`) and leave the key path empty, "
            "or use a key without a passphrase.",
            doc="ssh-auth",
        ) from exc
    except (paramiko.SSHException, ValueError, OSError) as exc:
        raise SSHAuthError(
            f"Could not read the SSH private key {key_path}: {exc}",
            fix="Use an OpenSSH or PEM private key of type ed25519, rsa or ecdsa.",
            doc="ssh-auth",
        ) from exc


def tofu_policy(on_unknown: Callable[[paramiko.PKey], None]) -> paramiko.MissingHostKeyPolicy:
    import paramiko  # lazy: paramiko (~100 ms) only when a connection is made

    class TrustOnFirstUse(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                             key: paramiko.PKey) -> None:
            on_unknown(key)
            client.get_host_keys().add(hostname, key.get_name(), key)

    return TrustOnFirstUse()
