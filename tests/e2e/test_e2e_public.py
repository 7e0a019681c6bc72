"""End to end: a public endpoint checks an API key that fluxdeploy creates, holds and rotates.

The "VM" answers on 127.0.0.2 (as in test_e2e's firewall scenario), its container publishes
the port on 0.0.0.0, and requests go there directly, as a client on the internet would send
them: without a key (401), with the key (200). `generate` and `doctor` use the key by
themselves; `key rotate` swaps it in the running server without a restart.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.e2e.conftest import E2E, ArgvSampler
from tests.fixtures.docker_env import docker

pytestmark = [pytest.mark.e2e, pytest.mark.docker]


def _check(result: subprocess.CompletedProcess[str], code: int = 0) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    return output


def _key_file(e2e: E2E) -> Path:
    return e2e.tmp / "home" / "deployments" / "e2e.api-key"


def _started_at(cid: str) -> str:
    return docker("inspect", "--format", "{{.State.StartedAt}}", cid).stdout.strip()


def test_public_endpoint_needs_the_key_that_up_made_generate_sends_and_rotate_replaces(
        e2e: E2E) -> None:
    e2e.lam.instance_ip = "127.0.0.2"
    preset = e2e.preset(exposure="public")
    with ArgvSampler() as sampler:
        up = _check(e2e.cli("up", "--preset", str(preset)))
        assert "Writing the API key to the server's secrets volume" in up
        assert "fluxdeploy key show" in up
        state = e2e.state()
        assert state["auth"] is True and state["ip"] == "127.0.0.2"
        key_file = _key_file(e2e)
        assert key_file.stat().st_mode & 0o777 == 0o600
        key = key_file.read_text().strip()
        assert key.startswith("fxk_")
        base = f"http://127.0.0.2:{state['port']}"

        # a client out there: no key, a wrong key, the key; the probes stay open
        no_key = httpx.get(f"{base}/model-status", timeout=10)
        assert no_key.status_code == 401 and no_key.headers["www-authenticate"].startswith(
            "Bearer")
        wrong = httpx.get(f"{base}/model-status", timeout=10,
                          headers={"Authorization": "Bearer fxk_" + "x" * 43})
        assert wrong.status_code == 401
        good = httpx.get(f"{base}/model-status", headers={"Authorization": f"Bearer {key}"},
                         timeout=10)
        assert good.status_code == 200
        assert httpx.get(f"{base}/ready", timeout=10).json()["state"] == "ready"

        # the CLI sends the key by itself
        out = e2e.tmp / "fox.png"
        _check(e2e.cli("generate", "a red fox", "-o", str(out), "--width", "64", "--height",
                       "64", "--steps", "2"))
        with Image.open(out) as image:
            assert image.size == (64, 64)
        report = json.loads(e2e.cli("doctor", "--json").stdout)
        auth = next(c for c in report["checks"] if c["id"] == "auth")
        assert auth["status"] == "pass", auth

        # `key show` refuses a pipe, and prints with --reveal
        refused = e2e.cli("key", "show")
        assert refused.returncode == 1 and key not in refused.stdout + refused.stderr
        e2e.outputs.pop()  # the revealed key is the one output allowed to hold it
        assert e2e.cli("key", "show", "--reveal").stdout.strip() == key
        e2e.outputs.pop()

        # rotation: the running server takes the new key at once, without a restart
        (cid,) = e2e.containers("e2e")
        started = _started_at(cid)
        rotated = _check(e2e.cli("key", "rotate"))
        assert "takes the new key and refuses the old one" in rotated
        new_key = key_file.read_text().strip()
        assert new_key != key and new_key.startswith("fxk_")
        assert httpx.get(f"{base}/model-status", headers={"Authorization": f"Bearer {key}"},
                         timeout=10).status_code == 401
        assert httpx.get(f"{base}/model-status", timeout=10,
                         headers={"Authorization": f"Bearer {new_key}"}).status_code == 200
        assert e2e.containers("e2e") == [cid] and _started_at(cid) == started
        _check(e2e.cli("generate", "a blue fox", "-o", str(out), "--width", "64", "--height",
                       "64", "--steps", "2"))

        # `up` again keeps the container and the clients' key
        again = _check(e2e.cli("up", "--preset", str(preset)))
        assert "nothing to do" in again and key_file.read_text().strip() == new_key
        container_env = docker("inspect", "--format", "{{json .Config.Env}}", cid).stdout
        server_log = docker("logs", cid).stdout + docker("logs", cid).stderr
        _check(e2e.cli("down"))
    assert e2e.containers("e2e") == []
    volumes = docker("volume", "ls", "-q", "--filter", "name=fluxdeploy-e2e-secrets").stdout
    assert volumes.strip() == ""  # `down` removed the server's secrets

    # the keys: in no output, record, argv, SSH command, container env or server log line
    for secret in (key, new_key):
        assert all(secret not in text for text in e2e.outputs)
        assert secret not in (e2e.tmp / "home" / "deployments" / "e2e.json").read_text()
        assert all(secret not in sample for sample in sampler.samples)
        assert all(secret not in command for command in e2e.vm.commands())
        assert secret not in container_env and secret not in server_log
