"""`fluxdeploy ssh` and `fluxdeploy exec` against the test sshd "VM" (a real OpenSSH sshd on
loopback) and the real Docker engine, run as a user runs them: the CLI in a subprocess.

- a command's output and exit status come back; a shell under a terminal (a pty here) takes
  keys and returns its status;
- the host key is pinned: a VM answering with another key is refused;
- `--node 2` reaches node 2's address (the sshd listens on two addresses, one per node);
- bad input: an unknown node, exec when the container is not running, ssh to a deployment
  that is down: a message naming the problem and the fix, exit 1.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from intelligensi_deploy.state import Deployment, NodeRecord, StateStore
from tests.fixtures.docker_env import BASE_IMAGE, docker, ensure_base_image, ensure_engine
from tests.fixtures.sshd import SSHServer

REPO = Path(__file__).resolve().parents[1]


def record(home: Path, sshd: SSHServer, **fields: object) -> Deployment:
    dep = Deployment.model_validate({
        "name": "vm", "preset": "ssh", "provider": "ssh", "phase": "ready", "ip": sshd.host,
        "ssh_port": sshd.port, "ssh_user": sshd.user,
        "ssh_key_path": str(sshd.client_key_path), "host_key": sshd.host_public_key,
        "container_name": "fluxdeploy-vm", "image": BASE_IMAGE, **fields})
    StateStore(home).save(dep)
    return dep


def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLUXDEPLOY_", "HF_", "GHCR_", "LAMBDA_"))}
    env.update(FLUXDEPLOY_HOME=str(home), COLUMNS="200", NO_COLOR="1")
    return env


def fluxdeploy(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intelligensi_deploy", *args],
                          env=cli_env(home), cwd=REPO, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120, check=False)


# --------------------------------------------------------------------------- ssh


def test_ssh_runs_a_command_and_brings_back_its_output_and_status(
        tmp_path: Path, sshd: SSHServer) -> None:
    record(tmp_path, sshd)
    done = fluxdeploy(tmp_path, "ssh", "--name", "vm", "--", "echo", "on-the-vm;", "echo",
                      "oops", ">&2;", "exit", "3")
    assert done.returncode == 3, done.stderr
    assert done.stdout == "on-the-vm\n"
    assert "oops" in done.stderr
    assert sshd.commands()[-1] == "echo on-the-vm; echo oops >&2; exit 3"  # as ssh joins


def test_ssh_refuses_a_vm_whose_host_key_changed(tmp_path: Path, sshd: SSHServer) -> None:
    record(tmp_path, sshd)
    sshd.restart(new_host_key=True)  # the same address now answers with another key
    done = fluxdeploy(tmp_path, "ssh", "--name", "vm", "--", "echo", "reached")
    assert done.returncode == 1
    assert "reached" not in done.stdout
    assert "host key" in done.stderr.lower()


def test_ssh_to_node_2_reaches_node_2(tmp_path: Path, sshd_two_addresses: SSHServer) -> None:
    sshd = sshd_two_addresses
    nodes = [NodeRecord(index=i, name=f"vm-node{i}", ip=f"127.0.0.{i}",
                        host_key=sshd.host_public_key, container_name=f"fluxdeploy-vm-node{i}")
             for i in (1, 2)]
    record(tmp_path, sshd, nodes=nodes)
    done = fluxdeploy(tmp_path, "ssh", "--name", "vm", "--node", "2", "--",
                      'echo "$SSH_CONNECTION"')
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[2] == "127.0.0.2"  # the server address the session reached
    head = fluxdeploy(tmp_path, "ssh", "--name", "vm", "--", 'echo "$SSH_CONNECTION"')
    assert head.stdout.split()[2] == "127.0.0.1"


def test_ssh_gives_a_shell_under_a_terminal(tmp_path: Path, sshd: SSHServer) -> None:
    """Under a pty, no command: a login shell that reads our keys and exits with ours."""
    record(tmp_path, sshd)
    parent, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "intelligensi_deploy", "ssh", "--name",
                             "vm"], env=cli_env(tmp_path), cwd=REPO, stdin=child, stdout=child,
                            stderr=child, start_new_session=True)
    os.close(child)
    try:
        prompt = read_until(parent, (b"# ", b"$ "), proc)  # typed earlier, sh -l may flush it
        assert prompt, "no prompt from the VM's shell"
        os.write(parent, b"echo shell-$((40+2))\n")
        seen = read_until(parent, (b"shell-42",), proc)
        os.write(parent, b"exit 5\n")
        assert proc.wait(timeout=60) == 5
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(parent)
    assert b"shell-42" in seen


def read_until(fd: int, wanted: tuple[bytes, ...], proc: subprocess.Popen[bytes],
               limit: float = 60.0) -> bytes:
    """What the terminal showed until one of `wanted` did (b"" if it never did)."""
    seen = b""
    deadline = time.monotonic() + limit
    while not any(w in seen for w in wanted):
        if time.monotonic() > deadline or proc.poll() is not None:
            return b""
        if select.select([fd], [], [], 0.2)[0]:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen


def test_ssh_to_a_deployment_that_is_down_says_so(tmp_path: Path, sshd: SSHServer) -> None:
    record(tmp_path, sshd, phase="down")
    done = fluxdeploy(tmp_path, "ssh", "--name", "vm", "--", "true")
    assert done.returncode == 1
    assert "is down" in done.stderr and "fluxdeploy up" in done.stderr
    assert sshd.commands() == []  # refused before any connection


def test_an_unknown_node_is_refused_naming_the_nodes(tmp_path: Path, sshd: SSHServer) -> None:
    nodes = [NodeRecord(index=i, name=f"vm-node{i}", ip="127.0.0.1",
                        host_key=sshd.host_public_key) for i in (1, 2)]
    record(tmp_path, sshd, nodes=nodes)
    done = fluxdeploy(tmp_path, "exec", "--name", "vm", "--node", "7", "--", "true")
    assert done.returncode == 1
    assert "no node 7" in done.stderr and "nodes: 1, 2" in done.stderr
    one_vm = tmp_path / "one"
    record(one_vm, sshd)
    done = fluxdeploy(one_vm, "ssh", "--name", "vm", "--node", "2", "--", "true")
    assert done.returncode == 1 and "runs on one VM" in done.stderr


# --------------------------------------------------------------------------- exec


@pytest.fixture
def container() -> Iterator[str]:
    """A running container of the offline base image, named like a server container."""
    ensure_engine()
    ensure_base_image()
    name = f"fluxdeploy-shell-{uuid.uuid4().hex[:8]}"
    docker("run", "-d", "--name", name, BASE_IMAGE, "sleep", "600")
    try:
        yield name
    finally:
        docker("rm", "-f", name, check=False)


def test_exec_runs_in_the_server_container_on_the_vm(
        tmp_path: Path, sshd: SSHServer, container: str) -> None:
    record(tmp_path, sshd, container_name=container)
    done = fluxdeploy(tmp_path, "exec", "--name", "vm", "--", "sh", "-c",
                      "cat /etc/debian_version >/dev/null && echo inside $(hostname); exit 4")
    assert done.returncode == 4, done.stderr
    hostname = docker("inspect", "-f", "{{.Config.Hostname}}", container).stdout.strip()
    assert done.stdout.strip() == f"inside {hostname}"
    assert any(f"exec -i {container} sh -c" in c for c in sshd.commands())


def test_exec_when_the_container_is_not_running_says_how_to_look_inside(
        tmp_path: Path, sshd: SSHServer, container: str) -> None:
    docker("stop", "-t", "1", container)
    record(tmp_path, sshd, container_name=container)
    done = fluxdeploy(tmp_path, "exec", "--name", "vm", "--", "true")
    assert done.returncode == 1
    assert f"container {container} is not running (status exited" in done.stderr
    assert f"docker run --rm -it --entrypoint bash {BASE_IMAGE}" in done.stderr
    assert "fluxdeploy logs --name vm" in done.stderr


def test_exec_on_provider_local_runs_docker_exec_here(tmp_path: Path, container: str) -> None:
    StateStore(tmp_path).save(Deployment(name="here", preset="local", provider="local",
                                         phase="ready", container_name=container))
    done = fluxdeploy(tmp_path, "exec", "--name", "here", "--", "sh", "-c",
                      "echo local-$(hostname); exit 6")
    assert done.returncode == 6, done.stderr
    hostname = docker("inspect", "-f", "{{.Config.Hostname}}", container).stdout.strip()
    assert done.stdout.strip() == f"local-{hostname}"
    ssh = fluxdeploy(tmp_path, "ssh", "--name", "here")
    assert ssh.returncode == 1 and "fluxdeploy exec --name here" in ssh.stderr


@pytest.mark.timeout(60)
def test_ssh_closes_promptly_on_sigterm_with_143(tmp_path: Path, sshd: SSHServer) -> None:
    record(tmp_path, sshd)
    proc = subprocess.Popen([sys.executable, "-m", "intelligensi_deploy", "ssh", "--name", "vm",
                             "--", "echo", "started;", "exec", "sleep", "30"],
                            env=cli_env(tmp_path), cwd=REPO, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"started\n"
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 143
    assert proc.stderr is not None and b"Traceback" not in proc.stderr.read()
