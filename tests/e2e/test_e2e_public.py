"""End to end: a public endpoint speaks HTTPS with a pinned certificate and checks an API key
that fluxdeploy creates, holds and rotates.

The "VM" answers on 127.0.0.2 (as in test_e2e's firewall scenario), its container publishes
the port on 0.0.0.0, and requests go there directly, as a client on the internet would send
them: without a key (401), with the key (200), trusting `fluxdeploy cert`'s PEM. `generate`
and `doctor` use the key and the pin by themselves; `key rotate` swaps the key in the running
server without a restart; a certificate swapped on the VM is refused by name.
"""

from __future__ import annotations

import json
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
from PIL import Image

from intelligensi_deploy.remote.docker import Docker
from intelligensi_deploy.remote.local_host import LocalHost
from intelligensi_deploy.remote.secret_volume import write_secret
from intelligensi_deploy.tls_cert import make_certificate
from intelligensi_deploy.tls_pin import presented_certificate
from tests.e2e.conftest import E2E, ArgvSampler, wait_for
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
        port = state["port"]
        base = f"https://127.0.0.2:{port}"
        assert f"URL: {base}" in up and state["tls_fingerprint"] in up

        # the pinned certificate, as a client gets it; plain HTTP and unknown trust fail
        pem = e2e.tmp / "e2e.pem"
        _check(e2e.cli("cert", "-o", str(pem)))
        assert pem.read_text() == state["tls_cert"]
        assert presented_certificate("127.0.0.2", port) == state["tls_fingerprint"]
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.2:{port}/health", timeout=10)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/health", timeout=10)  # the system's trust: not this one

        trust = ssl.create_default_context(cafile=str(pem))

        # curl, as the PLAYBOOK shows it (the key in a 0600 header file, not on argv)
        header = e2e.tmp / "auth.header"
        header.touch(mode=0o600)
        header.write_text(f"Authorization: Bearer {key}\n")
        curl = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(pem)]
        without = subprocess.run([*curl, f"{base}/model-status"], capture_output=True,
                                 text=True, check=False).stdout
        with_key = subprocess.run([*curl, "-H", f"@{header}", f"{base}/model-status"],
                                  capture_output=True, text=True, check=False).stdout
        print(f"$ curl --cacert e2e.pem {base}/model-status -> {without}")
        print(f"$ curl --cacert e2e.pem -H @auth.header {base}/model-status -> {with_key}")
        assert (without, with_key) == ("401", "200")

        # a client out there: no key, a wrong key, the key; the probes stay open
        no_key = httpx.get(f"{base}/model-status", timeout=10, verify=trust)
        assert no_key.status_code == 401 and no_key.headers["www-authenticate"].startswith(
            "Bearer")
        wrong = httpx.get(f"{base}/model-status", timeout=10, verify=trust,
                          headers={"Authorization": "Bearer fxk_" + "x" * 43})
        assert wrong.status_code == 401
        good = httpx.get(f"{base}/model-status", headers={"Authorization": f"Bearer {key}"},
                         timeout=10, verify=trust)
        assert good.status_code == 200
        assert httpx.get(f"{base}/ready", timeout=10, verify=trust).json()["state"] == \
            "ready"

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
                         timeout=10, verify=trust).status_code == 401
        assert httpx.get(f"{base}/model-status", timeout=10, verify=trust,
                         headers={"Authorization": f"Bearer {new_key}"}).status_code == 200
        assert e2e.containers("e2e") == [cid] and _started_at(cid) == started
        _check(e2e.cli("generate", "a blue fox", "-o", str(out), "--width", "64", "--height",
                       "64", "--steps", "2"))

        # `up` again keeps the container and the clients' key
        again = _check(e2e.cli("up", "--preset", str(preset)))
        assert "nothing to do" in again and key_file.read_text().strip() == new_key
        assert e2e.state()["tls_fingerprint"] == state["tls_fingerprint"]  # kept, not remade
        container_env = docker("inspect", "--format", "{{json .Config.Env}}", cid).stdout
        server_log = docker("logs", cid).stdout + docker("logs", cid).stderr

        # someone swaps the certificate on the VM: every command refuses it by name
        swapped = make_certificate("127.0.0.2", "e2e")
        engine = Docker(LocalHost())
        write_secret(engine, e2e.registry.image, "fluxdeploy-e2e-secrets", "tls.key",
                     swapped.key_pem)
        write_secret(engine, e2e.registry.image, "fluxdeploy-e2e-secrets", "tls.crt",
                     swapped.cert_pem.encode())
        docker("restart", cid)
        wait_for(lambda: presented_certificate("127.0.0.2", port) == swapped.fingerprint,
                 timeout=120, interval=1.0)
        refused = e2e.cli("generate", "a fox", "-o", str(out), "--width", "64", "--height",
                          "64", "--steps", "2")
        said = refused.stdout + refused.stderr
        assert refused.returncode == 1, said
        assert "certificate of deployment 'e2e' changed" in said
        assert state["tls_fingerprint"] in said and swapped.fingerprint in said
        report = json.loads(e2e.cli("doctor", "--json").stdout)
        tls = next(c for c in report["checks"] if c["id"] == "tls")
        assert tls["status"] == "fail" and tls["doc"] == "cert-changed", tls
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
