"""Long-running commands close on SIGINT and SIGTERM, whatever they inherited (issue 12, 2).

`signals.interruptible()` in this process, then `fluxdeploy tunnel` for real: a subprocess
forwarding a port over a real sshd, started with SIGINT ignored as a background job of a
script would start it.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from intelligensi_deploy.signals import Interrupted, exit_code_for, interruptible
from intelligensi_deploy.state import Deployment, StateStore
from tests.fixtures.dispositions import ignored_signals, reset_inherited_dispositions
from tests.fixtures.sshd import SSHServer

REPO = Path(__file__).resolve().parents[1]
# `trap "" INT` makes the shell ignore SIGINT, and exec keeps SIG_IGN for the program it runs
IGNORING_SIGINT = ["sh", "-c", 'trap "" INT; exec "$0" "$@"']


# --------------------------------------------------------------------------- in process


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interruptible_raises_even_where_the_signal_was_ignored(signum: int, code: int) -> None:
    before = signal.signal(signum, signal.SIG_IGN)
    try:
        with pytest.raises(Interrupted) as caught, interruptible():
            os.kill(os.getpid(), signum)
            time.sleep(5)  # interrupted at once, not after 5 s
        assert caught.value.exit_code == code and caught.value.signum == signum
        assert exit_code_for(caught.value) == code
        assert signal.getsignal(signum) is signal.SIG_IGN  # what was there comes back
    finally:
        signal.signal(signum, before)


def test_exit_code_is_found_behind_a_wrapping_exception() -> None:
    class Wrapped(RuntimeError):
        pass

    try:
        try:
            raise Interrupted(signal.SIGTERM)
        except Interrupted as exc:
            raise Wrapped() from exc
    except Wrapped as wrapped:
        assert exit_code_for(wrapped) == 143
    assert exit_code_for(KeyboardInterrupt()) == 130


def test_interruptible_refuses_other_threads() -> None:
    errors: list[BaseException] = []

    def enter() -> None:
        try:
            with interruptible():
                pass
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    assert errors and "main thread" in str(errors[0])


def test_a_second_signal_ends_a_hung_cleanup_at_once() -> None:
    code = (
        "import time\n"
        "from intelligensi_deploy.signals import interruptible, wait_forever\n"
        "with interruptible():\n"
        "    try:\n"
        "        print('ready', flush=True)\n"
        "        wait_forever()\n"
        "    finally:\n"
        "        print('cleaning', flush=True)\n"
        "        time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             cwd=REPO)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGINT)
        assert child.stdout.readline().strip() == "cleaning"
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=5) == 143
    finally:
        child.kill()
        child.wait()


def test_children_of_the_tests_start_with_default_dispositions() -> None:
    """tests/conftest.py resets what pytest inherited, so children do not inherit SIG_IGN."""
    code = (
        "import signal, subprocess\n"
        "from tests.fixtures.dispositions import reset_inherited_dispositions\n"
        "assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN\n"
        "print(sorted(reset_inherited_dispositions()))\n"
        "print(subprocess.run(['grep', 'SigIgn', '/proc/self/status'], capture_output=True,"
        " text=True).stdout.split()[1])\n"
    )
    out = subprocess.run(["sh", "-c", 'trap "" INT TERM; exec "$0" "$@"', sys.executable,
                          "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    reset, mask = out.stdout.split("\n")[:2]
    assert reset == "['SIGINT', 'SIGTERM']"
    ignored = int(mask, 16)
    assert not ignored & (1 << (signal.SIGINT - 1)) and not ignored & (1 << (signal.SIGTERM - 1))
    assert reset_inherited_dispositions() == []  # this pytest process was reset already
    assert signal.SIGINT not in ignored_signals() and signal.SIGTERM not in ignored_signals()


# --------------------------------------------------------------------------- fluxdeploy tunnel


class _Pong(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(b"pong\n")


@pytest.fixture
def target() -> Iterator[int]:
    """A TCP service on 127.0.0.1 for the tunnel to reach (the server's port on the VM)."""
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Pong) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server.server_address[1]
        server.shutdown()


def _start_tunnel(tmp_path: Path, sshd: SSHServer, port: int, *, prefix: list[str]
                  ) -> tuple[subprocess.Popen[str], int]:
    home = tmp_path / "home"
    StateStore(home).save(Deployment(
        name="vm", preset="ssh", provider="ssh", phase="ready", ip=sshd.host,
        ssh_port=sshd.port, ssh_user=sshd.user, ssh_key_path=str(sshd.client_key_path),
        host_key=sshd.host_public_key, container_name="fluxdeploy-vm", port=port))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXDEPLOY_")}
    env.update(FLUXDEPLOY_HOME=str(home), PYTHONUNBUFFERED="1")
    child = subprocess.Popen([*prefix, sys.executable, "-m", "intelligensi_deploy", "tunnel",
                              "--local-port", "0"], env=env, cwd=REPO, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
    assert child.stdout is not None
    deadline = time.monotonic() + 30
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(deadline - time.monotonic()):
                break
            line = child.stdout.readline()
            assert line, "tunnel exited before opening"
            if line.startswith("Tunnel open: http://127.0.0.1:"):
                return child, int(line.split("127.0.0.1:")[1].split()[0])
    child.kill()
    raise AssertionError("the tunnel did not open within 30 s")


def _through(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        return sock.recv(16)


def _closes_with(child: subprocess.Popen[str], signum: int, within: float) -> int:
    """Send `signum` and wait at most `within` seconds for the exit; its return code."""
    child.send_signal(signum)
    try:
        return child.wait(timeout=within)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        raise AssertionError(f"still running {within} s after {signal.Signals(signum).name}"
                             ) from None


def test_inherited_sigint_ignore_is_what_the_tunnel_tests_start_with() -> None:
    out = subprocess.run([*IGNORING_SIGINT, "grep", "SigIgn", "/proc/self/status"],
                         capture_output=True, text=True, check=True)
    assert int(out.stdout.split()[1], 16) & (1 << (signal.SIGINT - 1))


@pytest.mark.timeout(90)
def test_tunnel_started_with_sigint_ignored_closes_on_sigterm_within_2_s(
        tmp_path: Path, sshd: SSHServer, target: int) -> None:
    child, port = _start_tunnel(tmp_path, sshd, target, prefix=IGNORING_SIGINT)
    assert _through(port) == b"pong\n"  # the tunnel forwards, over SSH
    assert _closes_with(child, signal.SIGTERM, within=2.0) == 143
    output = child.stdout.read() if child.stdout else ""
    assert "Tunnel closed." in output and "Traceback" not in output
    with pytest.raises(OSError):
        _through(port)  # the local port is closed


@pytest.mark.timeout(90)
@pytest.mark.parametrize("prefix", [[], IGNORING_SIGINT], ids=["default", "sigint-ignored"])
def test_tunnel_closes_on_sigint_with_130(tmp_path: Path, sshd: SSHServer, target: int,
                                          prefix: list[str]) -> None:
    child, port = _start_tunnel(tmp_path, sshd, target, prefix=prefix)
    assert _through(port) == b"pong\n"
    assert _closes_with(child, signal.SIGINT, within=2.0) == 130
    output = child.stdout.read() if child.stdout else ""
    assert "Tunnel closed." in output and "Traceback" not in output


# --------------------------------------------------------------------------- fluxdeploy logs -f

FAKE_DOCKER = """#!/bin/sh
# `docker` on the test VM: answers `version`; `logs --follow` prints a line and keeps going.
case "$1" in
  version) echo 27.0.0 ;;
  logs) echo "server: loading component 2/7"; exec sleep 30 ;;
  *) exit 1 ;;
esac
"""


def fake_docker_on_vm(tmp_path: Path, sshd: SSHServer, script: str, **env: str) -> None:
    """Put `script` first on the test VM's PATH as `docker` (plus any other session env)."""
    bin_dir = tmp_path / "vm-bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(script)
    (bin_dir / "docker").chmod(0o755)
    sshd.set_session_env(PATH=f"{bin_dir}:/usr/bin:/bin", **env)


@pytest.mark.timeout(90)
def test_logs_follow_started_with_sigint_ignored_closes_on_sigterm(
        tmp_path: Path, sshd: SSHServer) -> None:
    fake_docker_on_vm(tmp_path, sshd, FAKE_DOCKER)
    home = tmp_path / "home"
    StateStore(home).save(Deployment(
        name="vm", preset="ssh", provider="ssh", phase="ready", ip=sshd.host,
        ssh_port=sshd.port, ssh_user=sshd.user, ssh_key_path=str(sshd.client_key_path),
        host_key=sshd.host_public_key, container_name="fluxdeploy-vm"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXDEPLOY_")}
    env.update(FLUXDEPLOY_HOME=str(home), PYTHONUNBUFFERED="1")
    child = subprocess.Popen([*IGNORING_SIGINT, sys.executable, "-m", "intelligensi_deploy",
                              "logs", "-f"], env=env, cwd=REPO, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
    assert child.stdout is not None
    lines = [child.stdout.readline() for _ in range(2)]  # "(deployment 'vm')", the log line
    assert "server: loading component 2/7" in lines[-1], lines
    assert _closes_with(child, signal.SIGTERM, within=2.0) == 143
    assert "Traceback" not in child.stdout.read()


# --------------------------------------------------------------------------- up, waiting on /ready

FAKE_DOCKER_FOR_UP = """#!/bin/sh
# `docker` on the test VM for `up`: no container yet; pull and run succeed.
case "$1" in
  version) echo 27.0.0 ;;
  inspect) echo "Error: No such object: $4" >&2; exit 1 ;;
  pull) echo "1.0: Pulling from x"; echo "Status: Downloaded newer image" ;;
  run) echo 0123456789ab ;;
  logs) echo "server: loading" ;;
  *) exit 0 ;;
esac
"""


class _Loading(socketserver.BaseRequestHandler):
    """A server that is still loading: `/ready` answers 503 `loading` forever."""

    def handle(self) -> None:
        self.request.recv(4096)
        body = b'{"state": "loading", "model": "x/y", "elapsed_s": 3.0}'
        self.request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                             b"application/json\r\nContent-Length: " + str(len(body)).encode()
                             + b"\r\nConnection: close\r\n\r\n" + body)


@pytest.mark.timeout(120)
def test_up_waiting_for_ready_closes_on_sigterm_with_the_state_saved(
        tmp_path: Path, sshd: SSHServer) -> None:
    vm_home = tmp_path / "vm-home"
    vm_home.mkdir()
    fake_docker_on_vm(tmp_path, sshd, FAKE_DOCKER_FOR_UP, HOME=str(vm_home))
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Loading) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        preset = tmp_path / "mine.yaml"
        preset.write_text(
            f"provider: ssh\nssh: {{host: {sshd.host}, port: {sshd.port}, user: {sshd.user}, "
            f"key_path: {sshd.client_key_path}}}\nimage: localhost:5000/flux:1\n"
            f"port: {server.server_address[1]}\nready_timeout: 300\n")
        home = tmp_path / "home"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("FLUXDEPLOY_", "HF_", "GHCR_"))}
        env.update(FLUXDEPLOY_HOME=str(home), PYTHONUNBUFFERED="1", COLUMNS="200")
        child = subprocess.Popen([*IGNORING_SIGINT, sys.executable, "-m", "intelligensi_deploy",
                                  "up", "--preset", str(preset), "--name", "mine"], env=env,
                                 cwd=REPO, text=True, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        assert child.stdout is not None
        seen = []
        while not any("loading" in line and "(" in line for line in seen[-1:]):
            line = child.stdout.readline()
            assert line, "up exited early:\n" + "".join(seen)
            seen.append(line)
        assert any("Waiting for /ready" in line for line in seen), seen
        assert _closes_with(child, signal.SIGTERM, within=2.0) == 143
        output = "".join(seen) + child.stdout.read()
        server.shutdown()
    assert "What was done is recorded" in output and "Traceback" not in output
    record = StateStore(home).load("mine")
    assert record is not None and record.phase == "loading"  # resumable: `up` again waits
    assert record.container_name == "fluxdeploy-mine"
