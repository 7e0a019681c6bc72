"""Scale-out end to end: a 3-node Ray Serve cluster on three "VMs" (tests/e2e/cluster_vms.py),
each with its own address and sshd, launched through the fake Lambda API (several instances at
once, every request and response checked against the OpenAPI file).

One scenario, in the order a user meets it: `up` killed right after the launches resumes
without a second launch; `up` reaches ready 3/3 and opens Ray's ports to the three nodes only;
`generate` works through the one endpoint; a bounded load (32 clients, 200 requests) sees only
200 or 429 with Retry-After; one worker's container killed during the load: requests keep being
served, `/ready` shows 2/3 and `doctor` names the lost node; started again: 3/3; `down` leaves
no container, no instance and no firewall rule. The tiny model on CPU; each node has a custom
Ray resource `fakegpu: 1` where its GPU would be, so Serve's placement is real.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.cluster_vms import VM, vms_fixture
from tests.e2e.conftest import (
    E2E,
    HF_TOKEN,
    INSTANCE_TYPE,
    LAMBDA_KEY,
    PUBLIC_REPO,
    REGION,
    bridge_gateway,
    interrupt,
    wait_for,
)
from tests.fakes.fake_hf_hub import FakeHfHub
from tests.fakes.fake_lambda import FakeLambda
from tests.fixtures.docker_env import (  # noqa: F401  (pytest fixtures)
    REPO_ROOT,
    Registry,
    base_image,
    docker,
    free_port,
)

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.timeout(2400)]

SCALE_IMAGE = os.environ.get("SCALE_IMAGE", "fluxdeploy/flux-server:cpu-scale")
NAME = "cluster"
CLIENTS, REQUESTS = 32, 200


@pytest.fixture(scope="module")
def scale_image(base_image: str) -> str:  # noqa: F811
    """The server image with the `scale` extra (Ray Serve), built from server/Dockerfile."""
    env = {**os.environ, "SERVER_IMAGE": SCALE_IMAGE, "SERVER_EXTRAS": "scale",
           "BASE_IMAGE": base_image}
    subprocess.run(["bash", str(REPO_ROOT / "scripts" / "build_server_image.sh")], env=env,
                   check=True, timeout=1800)
    return SCALE_IMAGE


@pytest.fixture(scope="module")
def vms(tmp_path_factory: pytest.TempPathFactory, base_image: str  # noqa: F811
        ) -> Iterator[list[VM]]:
    yield from vms_fixture(tmp_path_factory.mktemp("cluster-vms"), 3, base_image)


@pytest.fixture
def cluster(tmp_path: Path, vms: list[VM], registry: Registry, hub: FakeHfHub,
            scale_image: str) -> Iterator[E2E]:
    """The E2E world of tests/e2e/conftest.py with three VMs behind the fake Lambda."""
    # on the bridge: the head's watchdog, in the head VM's namespace, must reach it
    lam = FakeLambda(api_key=LAMBDA_KEY, capacity={INSTANCE_TYPE: [REGION]}, boot_seconds=2.0,
                     instance_ip=[vm.ip for vm in vms], launch_interval_s=0.0,
                     host=bridge_gateway())
    head = vms[0].sshd
    lam.add_ssh_key("e2e", head.client_public_key)
    for vm in vms[1:]:
        vm.sshd.authorize(head.client_public_key)  # one key pair for the cluster, as on Lambda
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGING", "GHCR_", "LAMBDA_", "FLUXDEPLOY_"))}
    env.update(FLUXDEPLOY_HOME=str(tmp_path / "home"), FLUXDEPLOY_CONFIG=str(tmp_path / "cfg"),
               LAMBDA_API_KEY=LAMBDA_KEY, HF_TOKEN=HF_TOKEN, PYTHONUNBUFFERED="1",
               COLUMNS="200")
    with lam:
        env["LAMBDA_API_URL"] = lam.url
        world = E2E(tmp=tmp_path, vm=head, lam=lam, registry=registry, hub=hub, env=env)
        yield world
        for cid in world.containers(NAME):
            docker("rm", "-f", cid, check=False)
        assert lam.violations == [], f"OpenAPI contract violations: {lam.violations}"


def _check(result: subprocess.CompletedProcess[str]) -> str:
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    return out


def _ray_rules(lam: FakeLambda) -> list[dict[str, Any]]:
    """Ray's rules, in the deployment's firewall ruleset: never in the account's rules."""
    def ray(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in rules if "fluxdeploy ray" in (r.get("description") or "")]

    assert ray(lam.firewall_rules) == [] and lam.calls("PUT", "/firewall-rules") == []
    return [r for ruleset in lam.rulesets.rulesets.values() for r in ray(ruleset["rules"])]


def _open_tunnel(world: E2E) -> tuple[subprocess.Popen[str], str]:
    tunnel = world.spawn("tunnel", "--name", NAME, "--local-port", "0")
    while True:
        line = tunnel.stdout.readline()
        assert line, "tunnel exited without printing its URL"
        found = re.search(r"http://127\.0\.0\.1:\d+", line)
        if found:
            return tunnel, found.group(0)


def _ready(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/ready", timeout=10).json()


class Load:
    """CLIENTS threads sharing REQUESTS generations; every answer's status kept. A client
    told 429 waits its Retry-After (at most 3 s) before its next request."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.results: list[tuple[int, str | None, str]] = []  # status, Retry-After, error type
        self._left = REQUESTS
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, daemon=True)
                         for _ in range(CLIENTS)]

    def _take(self) -> bool:
        with self._lock:
            if self._left == 0:
                return False
            self._left -= 1
            return True

    def _client(self) -> None:
        with httpx.Client(timeout=120) as client:
            while self._take():
                try:
                    r = client.post(f"{self.url}/generate", json={
                        "prompt": "a red fox", "width": 64, "height": 64,
                        "num_inference_steps": 2, "seed": 7})
                    kind = "" if r.status_code == 200 else (
                        r.json().get("error") or {}).get("type", "")
                    after = r.headers.get("retry-after")
                    self.results.append((r.status_code, after, kind))
                    if r.status_code == 429 and after:  # a polite client waits as told
                        time.sleep(min(float(after), 3.0))
                except httpx.HTTPError as exc:
                    self.results.append((0, None, type(exc).__name__))

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=600)


def test_three_node_cluster_up_load_lose_a_worker_recover_down(cluster: E2E, vms: list[VM]
                                                              ) -> None:
    world = cluster
    preset = world.preset(
        "cluster", image=SCALE_IMAGE, pull="if-missing",
        ssh={"user": world.vm.user, "port": 22, "key_path": str(world.vm.client_key_path)},
        server={"model": PUBLIC_REPO, "memory": "cpu", "dtype": "fp32", "queue_size": 8},
        scale={"nodes": 3},
        env={"HF_ENDPOINT": world.hub.url, "HF_HUB_DISABLE_XET": "1",
             "FLUX_REPLICA_RESOURCE": "fakegpu"},
        ready_timeout=600)

    # 1. `up` killed once all three nodes are launched: the next `up` launches nothing more.
    first = world.spawn("up", "--preset", str(preset), "--name", NAME)
    try:
        wait_for(lambda: len([n for n in world.state(NAME).get("nodes", [])
                              if n.get("instance_id")]) == 3, timeout=120)
    finally:
        interrupt(first)
    assert world.launches() == 3

    # 2. `up` resumes and reaches ready 3/3, with Ray's ports open to the nodes only.
    up = _check(world.cli("up", "--preset", str(preset), "--name", NAME, timeout=900))
    assert world.launches() == 3, "the resumed up launched again"
    assert "Resuming deployment 'cluster'" in up and "3/3" in up, up[-3000:]
    state = world.state(NAME)
    assert state["phase"] == "ready"
    assert [n["ip"] for n in state["nodes"]] == [vm.ip for vm in vms]
    assert state["ip"] == vms[0].ip and all(n["host_key"] for n in state["nodes"])
    rules = _ray_rules(world.lam)
    assert sorted(r["source_network"] for r in rules) == sorted(f"{vm.ip}/32" for vm in vms)
    assert all(r["port_range"] == [6379, 6499] and r["protocol"] == "tcp" for r in rules)
    assert sorted(world.containers(NAME)) and len(world.containers(NAME)) == 3

    # Secrets: the cluster's Ray token lives in each node's 0600 env file only; neither it nor
    # HF_TOKEN is in any process's argv (Ray's own processes included), the state or output.
    env_file = Path(os.path.expanduser("~")) / ".fluxdeploy" / f"{NAME}-node1.env"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    ray_token = next(line.split("=", 1)[1] for line in env_file.read_text().splitlines()
                     if line.startswith("RAY_AUTH_TOKEN="))
    assert len(ray_token) == 64
    argv_now = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True,
                              check=True).stdout
    assert "ray" in argv_now and "gcs_server" in argv_now
    for secret in (ray_token, HF_TOKEN):
        assert secret not in argv_now
        assert all(secret not in p.read_text() for p in (world.tmp / "home").rglob("*")
                   if p.is_file())
        assert all(secret not in text for text in world.outputs)
        for cid in world.containers(NAME):
            assert secret not in docker("inspect", "--format", "{{.Path}} {{json .Args}}",
                                        cid).stdout

    # a second `up` changes nothing
    again = _check(world.cli("up", "--preset", str(preset), "--name", NAME, timeout=600))
    assert again.count("runs this configuration") == 3 and world.launches() == 3

    out = world.tmp / "fox.png"
    _check(world.cli("generate", "a red fox", "--name", NAME, "-o", str(out), "--width", "64",
                     "--height", "64", "--steps", "2", "--seed", "7"))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    tunnel, url = _open_tunnel(world)
    try:
        body = _ready(url)
        assert body["cluster"]["ready"] == "3/3"
        assert sorted({r["node_ip"] for r in body["cluster"]["replicas"]}) == \
            sorted(vm.ip for vm in vms), "one replica per node (placement on fakegpu)"

        # 3. the bounded load, with worker 3 killed while it runs
        load = Load(url).start()
        wait_for(lambda: len(load.results) >= 60, timeout=300)
        docker("kill", f"fluxdeploy-{NAME}-node3")
        killed_at = len(load.results)
        load.join()
        codes = Counter(code for code, _, _ in load.results)
        head_log = docker("logs", f"fluxdeploy-{NAME}-node1")
        retried = (head_log.stdout + head_log.stderr).count("replica lost during a request")
        print(f"\nload: {dict(codes)}; worker killed after {killed_at} answers; "
              f"failures: {Counter(k for c, _, k in load.results if c not in (200, 429))}; "
              f"requests retried on another replica: {retried}")
        assert len(load.results) == REQUESTS
        assert codes[200] > REQUESTS // 4, codes
        assert all(after is not None and int(after) >= 1
                   for code, after, _ in load.results if code == 429)
        before_kill = load.results[:killed_at]
        assert all(code in (200, 429) for code, _, _ in before_kill), before_kill
        lost = [r for r in load.results if r[0] not in (200, 429)]
        assert len(lost) <= 2, f"requests failed after the worker was lost: {lost}"

        wait_for(lambda: _ready(url)["cluster"]["ready"] == "2/3", timeout=120, interval=1)
        doctor = world.cli("doctor", "--name", NAME, "--json")
        report = json.loads(doctor.stdout)
        text = json.dumps(report)
        assert doctor.returncode != 0 and "node-not-joined" in text and vms[2].ip in text, text

        status = json.loads(_check(world.cli("status", "--name", NAME, "--json")))
        rows = {n["index"]: n for n in status["deployments"][0]["nodes"]}
        assert rows[3]["container"]["status"] == "exited" and rows[2]["container"]["status"] \
            == "running"

        # 4. the worker comes back: 3/3 again
        docker("start", f"fluxdeploy-{NAME}-node3")
        wait_for(lambda: _ready(url)["cluster"]["ready"] == "3/3", timeout=300, interval=1)
        response = httpx.post(f"{url}/generate", json={"prompt": "fox", "width": 64,
                                                       "height": 64, "num_inference_steps": 2},
                              timeout=120)
        assert response.status_code == 200
    finally:
        interrupt(tunnel, signal.SIGINT)

    # 4b. an idle limit set on the running cluster: the head's watchdog ends all three nodes
    #     and removes their Ray rules through the fake Lambda. The "VMs" live on here, so the
    #     instances are set active again in the fake for the steps below.
    limited = _check(world.cli("up", "--preset", str(preset), "--name", NAME, "--limit-idle",
                               "20s", env={"FLUXDEPLOY_WATCH_INTERVAL_S": "2"}, timeout=600))
    assert f"Watchdog fluxdeploy-{NAME}-watchdog started on the VM" in limited, limited[-2000:]
    assert limited.count("runs this configuration") == 3
    ids = [n["instance_id"] for n in world.state(NAME)["nodes"]]
    started = time.monotonic()
    wait_for(lambda: all(world.lam.instances[i].forced_status == "terminated" for i in ids),
             timeout=20 + 15 + 10)
    print(f"cluster idle limit 20 s: all {len(ids)} nodes terminated "
          f"{time.monotonic() - started:.1f} s after `up` set it")
    # the watchdog deletes the ruleset (and Ray's rules with it) after the instances are
    # terminated: a moment later, longer on a loaded machine
    wait_for(lambda: _ray_rules(world.lam) == [], timeout=30, interval=0.5)
    watchdog_log = docker("logs", f"fluxdeploy-{NAME}-watchdog").stdout
    assert "limit reached: idle" in watchdog_log and "deleted firewall ruleset" in watchdog_log
    assert LAMBDA_KEY not in watchdog_log
    for instance_id in ids:
        world.lam.set_status(instance_id, "active")

    logs = _check(world.cli("logs", "--name", NAME, "--node", "2", "--tail", "50"))
    assert "ray" in logs.lower()
    replica = next(r["replica"] for r in body["cluster"]["replicas"]
                   if r["node_ip"] == vms[1].ip)
    replica_log = _check(world.cli("logs", "--name", NAME, "--replica", replica))
    assert f"flux_FluxReplica {replica} -- Started initializing replica" in replica_log, \
        replica_log[-2000:]
    assert re.search(rf"flux_FluxReplica {replica} .* CALL generate OK", replica_log)
    # and the replica's own lines, not only Serve's: its load, named by the replica
    assert re.search(rf"flux_FluxReplica {replica} .* replica {replica} on node "
                     rf"{re.escape(vms[1].ip)}: ready", replica_log), replica_log[-2000:]
    # a worker serves no HTTP: its raylet stands for it in Docker's health status
    wait_for(lambda: docker("inspect", "--format", "{{.State.Health.Status}}",
                            f"fluxdeploy-{NAME}-node2").stdout.strip() == "healthy",
             timeout=120, interval=2)
    table = _check(world.cli("status", "--name", NAME))
    assert "replicas ready 3/3" in table and all(vm.ip in table for vm in vms)

    dash = world.spawn("tunnel", "--name", NAME, "--dashboard", "--local-port", "0")
    try:
        line = dash.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert found and "Ray dashboard" in line, line
        # Ray's token guards the dashboard too: refused without it, served with it
        assert httpx.get(f"{found.group(0)}/api/version", timeout=30).status_code == 401
        assert httpx.get(f"{found.group(0)}/api/version", timeout=30, headers={
            "Authorization": f"Bearer {ray_token}"}).status_code == 200
        hint = dash.stdout.readline()
        assert f"{NAME}-node1.env" in hint and ray_token not in hint, hint
    finally:
        interrupt(dash, signal.SIGINT)

    # 5. the head is lost: doctor says so, and only reads (the container stays down)
    docker("kill", f"fluxdeploy-{NAME}-node1")
    doctor = world.cli("doctor", "--name", NAME, "--json")
    text = json.dumps(json.loads(doctor.stdout))
    assert doctor.returncode != 0 and "head-lost" in text, text
    assert docker("inspect", "--format", "{{.State.Running}}",
                  f"fluxdeploy-{NAME}-node1").stdout.strip() == "false"

    # 6. `down` leaves nothing behind, with the head already gone
    _check(world.cli("down", "--name", NAME, timeout=300))
    assert world.containers(NAME) == []
    assert _ray_rules(world.lam) == []
    assert all(i.forced_status == "terminated" for i in world.lam.instances.values())
    state = world.state(NAME)
    assert state["phase"] == "down" and state["nodes"] == [] and state["ray_rule_ips"] == []
    assert state["instance_id"] is None and state["firewall_ruleset_id"] is None
    assert world.lam.rulesets.rulesets == {}
    assert not env_file.exists(), "down left a node's secrets file behind"

    for text in world.outputs:
        assert HF_TOKEN not in text and LAMBDA_KEY not in text
