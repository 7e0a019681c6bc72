"""`python -m flux_server.node head|worker`: the bundled image's cluster entry point, run for
real as two processes on this machine (each its own Ray node, ports pinned apart), plus the
port range the CLI's firewall rules open, checked against the one the nodes use."""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from flux_server.config import SettingsError
from flux_server.node import NodePorts, ray_start_argv

from tests.fixtures.ports import free_port

SERVER_ROOT = Path(__file__).resolve().parents[1]


def test_ray_start_argv_pins_every_port_and_keeps_the_dashboard_on_loopback():
    head = ray_start_argv("head", {"FLUX_NODE_IP": "203.0.113.10"})
    assert "--head" in head and "--dashboard-host=127.0.0.1" in head
    assert "--node-ip-address=203.0.113.10" in head and "--block" in head
    worker = ray_start_argv("worker", {"FLUX_RAY_HEAD": "203.0.113.10",
                                       "FLUX_REPLICA_RESOURCE": "fakegpu",
                                       "FLUX_NODE_REPLICAS": "2"})
    assert "--address=203.0.113.10:6379" in worker
    assert '--resources={"fakegpu": 2}' in worker
    low, high = NodePorts().range()
    for argv in (head, worker):
        ports = [int(a.split("=")[1]) for a in argv if a.split("=")[0].endswith("-port")
                 and a.split("=")[0] != "--dashboard-port"]
        assert ports and all(low <= p <= high for p in ports), argv


def test_a_worker_without_head_is_refused_clearly():
    with pytest.raises(SettingsError, match="FLUX_RAY_HEAD must name the head"):
        ray_start_argv("worker", {})


def test_the_cli_firewall_range_is_the_nodes_port_range():
    sys.path.insert(0, str(SERVER_ROOT.parent))
    from intelligensi_deploy.cloud.ray_ports import RAY_PORTS, ray_start_args

    assert RAY_PORTS.range == NodePorts().range()
    server_side = {a for a in ray_start_argv("head", {}) if "port" in a}
    cli_side = {a for a in ray_start_args("head", node_ip="x") if "port" in a}
    assert server_side == cli_side


def _free_base(avoid: set[int]) -> int:
    for _ in range(200):
        base = random.randrange(10000, 19800, 200)  # below free_port()'s range
        if base in avoid:
            continue
        try:
            for port in range(base, base + 121):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free port range")


@pytest.mark.skipif(__import__("importlib").util.find_spec("ray") is None,
                    reason="needs the server's `scale` extra (ray[serve])")
def test_head_and_worker_nodes_serve_one_endpoint_and_stop_on_sigterm(tmp_path):
    head_base = _free_base(set())
    worker_base = _free_base({head_base})
    port = free_port()
    common = {**{k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}, "FLUX_NODE_IP": "127.0.0.1", "FLUX_REPLICA_RESOURCE": "fakegpu",
              "FLUX_NODE_REPLICAS": "1", "OMP_NUM_THREADS": "1", "FLUX_MODEL": "tiny",
              "HF_HOME": str(tmp_path / "hf"), "PYTHONUNBUFFERED": "1",
              "RAY_TMPDIR": tempfile.mkdtemp(prefix="ray", dir="/tmp"),  # short: unix sockets
              "RAY_AUTH_TOKEN": secrets.token_hex(32)}  # the cluster's own token
    head_env = {**common, "FLUX_RAY_PORT_BASE": str(head_base), "PORT": str(port),
                "FLUX_HOST": "127.0.0.1", "FLUX_REPLICAS": "2", "FLUX_REPLICA_CPUS": "0",
                "FLUX_RAY_DASHBOARD_PORT": str(free_port())}
    worker_env = {**common, "FLUX_RAY_PORT_BASE": str(worker_base),
                  "FLUX_RAY_HEAD": f"127.0.0.1:{head_base}"}
    with contextlib.ExitStack() as stack:
        logs = {name: stack.enter_context(open(tmp_path / f"{name}.log", "wb"))
                for name in ("head", "worker")}
        _run_head_and_worker(tmp_path, head_env, worker_env, logs, port)


def _run_head_and_worker(tmp_path, head_env, worker_env, logs, port) -> None:
    ray_tmp = head_env["RAY_TMPDIR"]
    head = subprocess.Popen([sys.executable, "-m", "flux_server.node", "head"], env=head_env,
                            stdout=logs["head"], stderr=subprocess.STDOUT, cwd=tmp_path)
    worker = None
    try:
        time.sleep(3)
        worker = subprocess.Popen([sys.executable, "-m", "flux_server.node", "worker"],
                                  env=worker_env, stdout=logs["worker"],
                                  stderr=subprocess.STDOUT, cwd=tmp_path)
        url = f"http://127.0.0.1:{port}"
        deadline, body = time.monotonic() + 240, None
        while time.monotonic() < deadline:
            assert head.poll() is None, (tmp_path / "head.log").read_text()[-3000:]
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            try:
                response = httpx.get(url + "/ready", timeout=5)
                body = response.json()
                if response.status_code == 200 and body["cluster"]["ready"] == "2/2":
                    break
            except httpx.TransportError:
                pass
            time.sleep(1)
        assert body and body["cluster"]["ready"] == "2/2", body
        assert len({r["node_id"] for r in body["cluster"]["replicas"]}) == 2  # one per node
        generated = httpx.post(url + "/generate", json={"prompt": "a fox", "width": 64,
                                                        "height": 64}, timeout=60)
        assert generated.status_code == 200
        _assert_replica_files_hold_our_lines(Path(ray_tmp), body)
        for proc in (worker, head):
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            print(f"stopped in {time.monotonic() - started:.1f} s")
        # Ray's own processes: in a container its end takes them; on this plain host the head
        # can still leave some (its Ray driver's signal handling), reported and killed below
        left = {pid: _command(pid) for pid in _ray_processes(ray_tmp)}
        print(f"Ray processes left after SIGTERM: {len(left)} {sorted(left.values())[:3]}")
    finally:
        for proc in (worker, head):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
        for pid in _ray_processes(ray_tmp):  # a failed run leaves no orphan to later tests
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:160]
    except OSError:
        return "(gone)"


def _ray_processes(ray_tmp: str) -> list[int]:
    """Live processes whose command line names this test's Ray temp dir."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if ray_tmp in cmdline and state != "Z":
            found.append(int(proc.name))
    return found


def _assert_replica_files_hold_our_lines(ray_tmp: Path, body: dict) -> None:
    """Each replica's Serve log file (what `fluxdeploy logs --replica` prints) holds the
    replica's own flux_server lines, not only Serve's."""
    for row in body["cluster"]["replicas"]:
        replica = row["replica"]
        files = list(ray_tmp.glob(f"**/session_*/logs/serve/replica_*_{replica}*.log"))
        assert files, sorted(str(p) for p in ray_tmp.glob("**/session_*/logs/serve/*"))
        text = "".join(f.read_text(errors="replace") for f in files)
        assert f"replica {replica} on node {row['node_ip']}: ready" in text, text[-2000:]
