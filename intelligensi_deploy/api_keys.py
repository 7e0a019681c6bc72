"""The API key of a deployment whose server checks keys (`auth`), as the laptop holds it.

`up` creates it (`secrets.token_urlsafe(32)` behind the `fxk_` prefix, a shape `redact`
masks wherever it appears) and keeps it beside the deployment's record, in a 0600 file of its
own: never inside the record's JSON, which `status --json` and bug reports carry around.
`generate` and `doctor` read it from there; `fluxdeploy key rotate` replaces it.
"""

from __future__ import annotations

import os
import secrets as random_secrets
import tempfile
from pathlib import Path

from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.secrets import Token

KEY_PREFIX = "fxk_"
KEY_NAME = "fluxdeploy API key"


def key_path(records_dir: Path, deployment: str) -> Path:
    """The key file of `deployment`, beside its record in `records_dir`."""
    return records_dir / f"{deployment}.api-key"


def new_key() -> str:
    """A fresh key: 256 random bits, URL-safe, with the prefix that marks it as ours."""
    return KEY_PREFIX + random_secrets.token_urlsafe(32)


def load_key(records_dir: Path, deployment: str) -> Token | None:
    """The deployment's key, or None when it has none. A key file others may read is
    refused: the key would be everyone's."""
    path = key_path(records_dir, deployment)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & 0o077:
        raise FluxdeployError(
            f"The API key file {path} can be read by other users (mode {mode & 0o777:o}).",
            fix=f"`chmod 600 {path}`, then `fluxdeploy key rotate`: others may have read it.")
    value = path.read_text(encoding="ascii").strip()
    return Token(KEY_NAME, value) if value else None


def save_key(records_dir: Path, deployment: str, value: str) -> Token:
    """Write `value` as the deployment's key: atomically, 0600 from the start."""
    records_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=records_dir, prefix=f".{deployment}.", suffix=".key-tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, key_path(records_dir, deployment))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Token(KEY_NAME, value)


def ensure_key(records_dir: Path, deployment: str) -> Token:
    """The deployment's key, created on first use (a redeploy keeps the clients' key)."""
    return load_key(records_dir, deployment) or save_key(records_dir, deployment, new_key())


def keys_file(token: Token) -> bytes:
    """The server's FLUX_API_KEYS_FILE body for `token` (one key per line)."""
    return f"{token.value}\n".encode("ascii")


def bearer(token: Token | str | None) -> dict[str, str]:
    """The request header carrying `token` (or a key's value), or none."""
    value = token.value if isinstance(token, Token) else token
    return {"Authorization": f"Bearer {value}"} if value else {}


def client_key(records_dir: Path, deployment: str, auth: bool) -> Token | None:
    """The key a client sends to `deployment` (None when its server checks none). A server
    that checks keys while this machine has none is an error that says what to do."""
    if not auth:
        return None
    token = load_key(records_dir, deployment)
    if token is None:
        raise FluxdeployError(
            f"Deployment {deployment!r} checks API keys and this machine holds none for it "
            f"({key_path(records_dir, deployment)} is missing: launched from another machine, "
            "or the file was removed).",
            fix="Copy the key file from the machine that ran `up` (mode 0600), or give the "
            "server a new key with `fluxdeploy key rotate` (the old one stops working).")
    return token
