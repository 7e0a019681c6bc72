"""End to end, for real: up, ready, generate, logs, tunnel, doctor, down.

Each test drives the `fluxdeploy` command against the harness in conftest.py: the fake
Lambda API launches an "instance" whose address is a real sshd on this machine, the image
comes from a real registry with auth, the container runs on the real Docker engine and
downloads a tiny FLUX model from the fake hub with HF_TOKEN.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.conftest import (
    E2E,
    GATED_REPO,
    HF_TOKEN,
    LAMBDA_KEY,
    ArgvSampler,
    interrupt,
    wait_for,
)
from tests.fixtures.docker_env import docker

pytestmark = [pytest.mark.e2e, pytest.mark.docker]


def _json(result: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(result.stdout)


def _check(result: subprocess.CompletedProcess[str], code: int = 0) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    return output


def test_happy_path_up_generate_logs_tunnel_doctor_down(e2e: E2E) -> None:
    preset = e2e.preset()
    with ArgvSampler() as sampler:
        up = _check(e2e.cli("up", "--preset", str(preset)))
    # what the user saw: the steps, the registry login on stdin, the phases of /ready
    assert "Launching gpu_1x_a10" in up and "Logging in to localhost:" in up
    assert "ready" in up and "Ready: deployment 'e2e'" in up
    state = e2e.state()
    assert state["phase"] == "ready" and state["instance_id"] and state["ip"] == "127.0.0.1"
    assert state["host_key"].startswith("ssh-ed25519 ")
    assert len(e2e.containers("e2e")) == 1

    status = _json(e2e.cli("status", "--json"))["deployments"][0]
    assert status["ready"]["state"] == "ready" and status["container"]["status"] == "running"

    out = e2e.tmp / "fox.png"
    _check(e2e.cli("generate", "a red fox", "-o", str(out), "--width", "64", "--height", "64",
                   "--steps", "2", "--seed", "7"))
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (64, 64)

    logs = _check(e2e.cli("logs", "--tail", "100"))
    assert re.search(r"request .*(/generate|route=generate)", logs), logs

    tunnel = e2e.spawn("tunnel", "--local-port", "0")
    try:
        found = None
        while found is None:
            line = tunnel.stdout.readline()
            assert line, "tunnel exited without printing its URL"
            found = re.search(r"http://127\.0\.0\.1:\d+", line)
        url = found.group(0)
        with urllib.request.urlopen(f"{url}/ready", timeout=10) as response:
            assert json.load(response)["state"] == "ready"
    finally:
        interrupt(tunnel, signal.SIGINT)
    assert tunnel.returncode == 130  # closed by its own handler, not killed

    doctor = e2e.cli("doctor", "--json")
    report = _json(doctor)
    assert doctor.returncode == 0, report
    assert not [c for c in report["checks"] if c["status"] == "fail"]

    (cid,) = e2e.containers("e2e")
    container_cmdline = docker("inspect", "--format",
                               "{{.Path}} {{json .Args}} {{json .Config.Cmd}}", cid).stdout
    _check(e2e.cli("down"))
    assert e2e.containers("e2e") == []
    assert e2e.state()["phase"] == "down" and e2e.state()["instance_id"] is None
    instance = next(iter(e2e.lam.instances.values()))
    assert instance.forced_status == "terminated"

    # Secrets: never in the CLI's output, the state, any process's argv, the commands run
    # over SSH, or the container's command line.
    secrets = [HF_TOKEN, LAMBDA_KEY, e2e.registry.password]
    for secret in secrets:
        assert all(secret not in text for text in e2e.outputs)
        assert all(secret not in p.read_text()
                   for p in (e2e.tmp / "home").rglob("*") if p.is_file())
        assert all(secret not in sample for sample in sampler.samples)
        assert all(secret not in command for command in e2e.vm.commands())
        assert secret not in container_cmdline
    assert len(sampler.samples) > 5


def test_wrong_ghcr_token_is_a_registry_problem_not_hugging_face(e2e: E2E) -> None:
    result = e2e.cli("up", "--preset", str(e2e.preset()), env={"GHCR_TOKEN": "ghp_wrongwrong1"})
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "localhost:" in output and "GHCR_TOKEN" in output
    assert "HF_TOKEN" not in output and "Hugging Face" not in output
    assert e2e.containers("e2e") == []
    diagnosis = e2e.cli("diagnose", "-", "--json", stdin=output)
    ids = [f["id"] for f in _json(diagnosis)["findings"]]
    assert ids[0] == "ghcr-auth" and diagnosis.returncode == 1
    assert "ghp_wrongwrong1" not in diagnosis.stdout
    _check(e2e.cli("down"))


def test_gated_model_without_token_fails_and_doctor_names_hf_auth(e2e: E2E) -> None:
    preset = e2e.preset(server={"model": GATED_REPO})
    result = e2e.cli("up", "--preset", str(preset), env={"HF_TOKEN": ""})
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "HF_TOKEN" in output and "GatedRepo" in output
    doctor = e2e.cli("doctor", "--json")
    report = _json(doctor)
    assert doctor.returncode == 1
    ids = [f["id"] for f in report["findings"]]
    assert ids[0] == "hf-auth", ids
    hf = report["findings"][0]
    assert "HF_TOKEN" in hf["fix"] and "GHCR" not in hf["fix"]
    _check(e2e.cli("down"))


def test_device_map_auto_is_refused_before_anything_launches(e2e: E2E) -> None:
    """Seed 000's headline mistake: refused by the preset check, before a VM bills and 30 GB
    download (the server's own failure text is named by tests/test_load_texts.py)."""
    preset = e2e.preset(server={"device_map": "auto"})
    result = e2e.cli("up", "--preset", str(preset))
    said = result.stdout + result.stderr
    assert result.returncode == 2, said
    assert "device_map" in said and "balanced" in said
    assert e2e.launches() == 0 and e2e.state() == {}


def test_local_fine_external_not_names_cause_and_offers_tunnel(e2e: E2E) -> None:
    """The classic trap: answers on the VM's localhost, not from outside.

    The VM's "public" address is 127.0.0.2 (sshd listens there too). The deployment asks for
    public exposure, then someone re-runs the container by hand with `-p 127.0.0.1:...`.
    """
    e2e.lam.instance_ip = "127.0.0.2"
    preset = e2e.preset(exposure="public", public_cidr="203.0.113.0/24")
    _check(e2e.cli("up", "--preset", str(preset)))
    state = e2e.state()
    ruleset = e2e.lam.rulesets.rulesets[state["firewall_ruleset_id"]]
    assert state["ip"] == "127.0.0.2" and state["firewall_rule"] is None
    assert [state["port"], state["port"]] in [r.get("port_range") for r in ruleset["rules"]]
    assert e2e.lam.calls("PUT", "/firewall-rules") == []  # the account's rules: untouched
    assert _json(e2e.cli("doctor", "--json"))["summary"].endswith("all good")

    (cid,) = e2e.containers("e2e")
    info = json.loads(docker("inspect", cid).stdout)[0]
    env = [e for e in info["Config"]["Env"] if e.startswith(("FLUX_", "HF_ENDPOINT", "PORT"))]
    labels = [f"--label={k}={v}" for k, v in info["Config"]["Labels"].items()
              if k.startswith("fluxdeploy.")]
    # the public server's API keys: the deployment's secrets volume, mounted read-only
    mounts = [f"--volume={m['Name']}:{m['Destination']}:ro" for m in info["Mounts"]
              if m.get("Name", "").endswith("-secrets")]
    assert mounts, info["Mounts"]
    docker("rm", "-f", cid)
    env_file = Path.home() / ".fluxdeploy" / "e2e.env"
    docker("run", "-d", "--name", "fluxdeploy-e2e", *labels, "--env-file", str(env_file),
           *[f"--env={e}" for e in env], *mounts, "-p", f"127.0.0.1:{state['port']}:8000",
           e2e.registry.image)
    def server_ready() -> bool:
        ready = _json(e2e.cli("status", "--json"))["deployments"][0]["ready"]
        return bool(ready) and ready["state"] == "ready"

    wait_for(server_ready, timeout=120, interval=1.0)

    doctor = e2e.cli("doctor", "--json")
    report = _json(doctor)
    assert doctor.returncode == 1, report
    status = {c["id"]: c["status"] for c in report["checks"]}
    assert status["health"] == "pass" and status["ready"] == "pass"
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert [c["id"] for c in failed] == ["external"], failed
    text = json.dumps(failed[0])
    assert "127.0.0.1" in text and "fluxdeploy tunnel" in text
    _check(e2e.cli("down"))
    assert e2e.lam.rulesets.rulesets == {}  # the deployment's ruleset deleted after the VM


def test_killed_right_after_launch_resumes_without_a_second_instance(e2e: E2E) -> None:
    e2e.lam.boot_seconds = 30.0
    process = e2e.spawn("up", "--preset", str(e2e.preset()))
    wait_for(lambda: e2e.state().get("instance_id"), timeout=60)
    interrupt(process)
    recorded = e2e.state()["instance_id"]
    assert e2e.launches() == 1
    e2e.lam.boot_seconds = 0.0
    output = _check(e2e.cli("up", "--preset", str(e2e.preset())))
    assert f"Reusing instance {recorded}" in output
    assert e2e.launches() == 1 and e2e.state()["instance_id"] == recorded
    _check(e2e.cli("down"))
    assert e2e.state()["phase"] == "down"


def test_up_twice_redeploys_nothing(e2e: E2E) -> None:
    preset = e2e.preset()
    _check(e2e.cli("up", "--preset", str(preset)))
    (first,) = e2e.containers("e2e")
    again = _check(e2e.cli("up", "--preset", str(preset)))
    assert "nothing to do" in again
    assert e2e.containers("e2e") == [first]
    assert e2e.launches() == 1
    _check(e2e.cli("down"))


def test_image_is_served_through_the_registry_only_with_login(e2e: E2E) -> None:
    """Without GHCR_TOKEN the private image cannot be pulled: a registry error, named so."""
    result = e2e.cli("up", "--preset", str(e2e.preset()), env={"GHCR_TOKEN": ""})
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "GHCR_TOKEN" in output and "HF_TOKEN" not in output
    _check(e2e.cli("down"))


def test_own_ssh_host_without_any_cloud(e2e: E2E) -> None:
    """Preset provider `ssh`: a host you already own; no Lambda call is made."""
    preset = e2e.preset(provider="ssh", **{"lambda": None})
    output = _check(e2e.cli("up", "--preset", str(preset), "--host", "127.0.0.1",
                            "--name", "own", env={"LAMBDA_API_KEY": ""}))
    assert "Ready: deployment 'own'" in output
    assert e2e.lam.requests == []
    assert len(e2e.containers("own")) == 1
    again = _check(e2e.cli("up", "--preset", str(preset), "--name", "own"))  # no --host:
    assert "nothing to do" in again                                         # it is recorded
    _check(e2e.cli("down", "--name", "own"))
    assert e2e.containers("own") == []
    assert e2e.state("own")["phase"] == "down"


def test_local_provider_runs_on_this_engine(e2e: E2E, server_image: str) -> None:
    """Preset provider `local` (the README's first command), on another port."""
    preset = e2e.preset(provider="local", **{"lambda": None}, image=server_image,
                        pull="if-missing", server={"model": "tiny"}, env={})
    output = _check(e2e.cli("up", "--preset", str(preset), "--name", "loc"))
    assert "is present; not pulling" in output and "Ready: deployment 'loc'" in output
    out = e2e.tmp / "loc.png"
    _check(e2e.cli("generate", "a fox", "--name", "loc", "-o", str(out), "--width", "64",
                   "--height", "64"))
    with Image.open(out) as image:
        assert image.size == (64, 64)
    _check(e2e.cli("down", "--name", "loc"))
    assert e2e.containers("loc") == []
