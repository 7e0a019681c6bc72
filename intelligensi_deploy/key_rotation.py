"""`fluxdeploy key rotate`: a new API key for a running server, without reloading the model.

The new key goes to the server's secrets volume first (the server re-reads its keys file on
SIGHUP, which follows, and on any change it sees), then beside the record here, so that a
failure on the way never leaves this machine holding a key the server does not know. Then
both keys are tried through the tunnel: the new one must be taken and the old one refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from intelligensi_deploy import api_keys, names
from intelligensi_deploy.endpoint import Endpoint
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.health import server_url
from intelligensi_deploy.machines import connect_existing
from intelligensi_deploy.remote.docker import Docker
from intelligensi_deploy.remote.secret_volume import write_secret
from intelligensi_deploy.secrets import Token
from intelligensi_deploy.state import Deployment

PROBE_PATH = "/model-status"  # cheap, and behind the key
TAKE_WAIT_S = 15.0


def require_auth(dep: Deployment) -> None:
    """Refuse, saying how to turn keys on, a deployment whose server checks none."""
    if not dep.auth:
        raise FluxdeployError(
            f"Deployment {dep.name!r} serves without API keys (exposure {dep.exposure}).",
            fix="Set `auth: true` in the preset (exposure: public has it by default), then "
            f"`fluxdeploy up --preset {dep.preset} --name {dep.name}`.")


def rotate(dep: Deployment, records_dir: Path, say: Callable[[str], None]) -> Token:
    """Give the deployment's server a new key, keep it here; returns it (never printed)."""
    require_auth(dep)
    host = connect_existing(dep)
    try:
        docker = Docker(host)
        old = api_keys.load_key(records_dir, dep.name)
        new = Token(api_keys.KEY_NAME, api_keys.new_key())
        say(f"Writing a new key to the server's secrets volume on {host.label}")
        write_secret(docker, dep.image, names.secrets_volume(dep.name), names.API_KEYS_FILE,
                     api_keys.keys_file(new))
        signalled = docker.run_docker(["kill", "--signal", "HUP", dep.container_name],
                                      timeout=60)
        if not signalled.ok:
            say(f"(could not signal {dep.container_name}: the server sees the change "
                "by itself within a second once it runs)")
        api_keys.save_key(records_dir, dep.name, new.value)
        say(f"Kept the new key in {api_keys.key_path(records_dir, dep.name)} (0600)")
        with server_url(host, dep.port, dep.tls) as server:
            check_taken(server, new, old)
        say("The server takes the new key and refuses the old one; the model stayed loaded")
        return new
    finally:
        host.close()


def check_taken(server: Endpoint, new: Token, old: Token | None,
                wait_s: float = TAKE_WAIT_S) -> None:
    """Wait until `server` takes `new` (and refuses `old`); FluxdeployError if it has not
    within `wait_s` seconds."""
    deadline = time.monotonic() + wait_s
    seen = "no answer"
    while True:
        try:
            new_status = _status(server, new)
            old_status = _status(server, old) if old else 401
        except httpx.HTTPError as exc:
            seen = f"{type(exc).__name__}"
        else:
            if new_status != 401 and old_status == 401:
                return
            seen = f"new key: HTTP {new_status}, old key: HTTP {old_status}"
        if time.monotonic() >= deadline:
            raise FluxdeployError(
                f"The server did not switch to the new key within {wait_s:.0f} s ({seen}).",
                fix="Check that the container runs (`fluxdeploy status`) and read its log "
                "(`fluxdeploy logs`): it names a keys file it could not read. This machine "
                "already holds the new key; `fluxdeploy key rotate` again is safe.")
        time.sleep(0.5)


def _status(server: Endpoint, key: Token) -> int:
    return server.get(PROBE_PATH, headers=api_keys.bearer(key), timeout=10.0).status_code
