"""Hosts against a real OpenSSH sshd on 127.0.0.1 (and the same contract on LocalHost)."""

from __future__ import annotations

import http.server
import os
import socket
import stat
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.remote.host import (
    CommandTimeout,
    Host,
    HostKeyMismatch,
    LocalHost,
    SSHAuthError,
    SSHConnectError,
    SSHHost,
    SSHTimeout,
    fingerprint,
    wait_for_ssh,
)
from tests.fixtures.sshd import SSHServer, free_port, generate_key

SECRET = "hf_TopSecretValue0123456789abcdefXYZ"


def ssh_host(server: SSHServer, **overrides: object) -> SSHHost:
    kwargs: dict[str, object] = {**server.host_kwargs(), "connect_timeout": 5.0}
    kwargs.update(overrides)
    return SSHHost(server.host, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SSHServer]:
    """A started sshd on 127.0.0.1."""
    with SSHServer(tmp_path / "sshd") as started:
        yield started


@pytest.fixture
def two_address_server(tmp_path: Path) -> Iterator[SSHServer]:
    """A started sshd on 127.0.0.1 and 127.0.0.2, same port."""
    with SSHServer(tmp_path / "sshd", listen_addresses=("127.0.0.1", "127.0.0.2")) as started:
        yield started


@pytest.fixture(params=["ssh", "local"])
def host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Host]:
    """The same Host contract, over SSH to a real sshd and on this machine."""
    if request.param == "local":
        yield LocalHost()
        return
    with SSHServer(tmp_path / "sshd") as server, ssh_host(server) as remote:
        yield remote


# --- commands ------------------------------------------------------------------------------


def test_run_returns_exit_code_and_output(host: Host) -> None:
    result = host.run(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert result.returncode == 7 and not result.ok
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert result.argv == ("sh", "-c", "echo out; echo err >&2; exit 7")


def test_run_success_is_ok(host: Host) -> None:
    assert host.run(["true"]).ok


def test_missing_program_is_exit_127(host: Host) -> None:
    assert host.run(["fluxdeploy-no-such-program"]).returncode == 127


def test_arguments_arrive_unchanged(host: Host) -> None:
    tricky = ["a b", "it's", '"quoted"', "$HOME", "`id`", "; rm -rf /tmp/x", "*", "", "é✓"]
    result = host.run(["printf", r"[%s]\n", *tricky])
    assert result.stdout.splitlines() == [f"[{arg}]" for arg in tricky]


def test_stdin_is_delivered_and_closed(host: Host) -> None:
    assert host.run(["cat"], stdin=b"line 1\nline 2").stdout == "line 1\nline 2"
    assert host.run(["cat"]).stdout == ""  # no stdin: EOF at once, no hang


def test_large_stdin_and_output(host: Host) -> None:
    data = os.urandom(1 << 20)
    result = host.run(["sh", "-c", "wc -c; head -c 2000000 /dev/zero | tr '\\0' x"], stdin=data)
    assert result.stdout.startswith("1048576") and result.stdout.count("x") == 2_000_000


def test_big_stdin_echoed_back_does_not_deadlock(host: Host) -> None:
    data = b"0123456789abcdef" * (1 << 20)  # 16 MiB: far more than an SSH window
    result = host.run(["cat"], stdin=data, timeout=60)
    assert len(result.stdout) == len(data)


def test_stdin_not_read_by_the_command_is_no_error(host: Host) -> None:
    assert host.run(["true"], stdin=b"x" * (8 << 20), timeout=60).ok


def test_output_streams_line_by_line_while_running(host: Host) -> None:
    seen: list[tuple[float, str]] = []
    start = time.monotonic()
    result = host.run(
        ["sh", "-c", "echo first; echo warn >&2; sleep 1.5; printf last"],
        on_output=lambda line: seen.append((time.monotonic() - start, line)),
    )
    lines = [line for _, line in seen]
    assert sorted(lines) == ["first", "last", "warn"]
    arrived = {line: at for at, line in seen}
    early = arrived["last"] - arrived["first"]
    assert early > 1.0, f"'first' came only {early:.2f} s before the end: not streamed"
    assert result.stdout == "first\nlast" and result.stderr == "warn\n"


def test_timeout_stops_the_command(host: Host) -> None:
    start = time.monotonic()
    with pytest.raises(CommandTimeout, match="sleep 30"):
        host.run(["sleep", "30"], timeout=1)
    assert time.monotonic() - start < 5


def test_timeout_applies_after_the_outputs_closed(host: Host) -> None:
    start = time.monotonic()
    with pytest.raises(CommandTimeout):
        host.run(["sh", "-c", "exec >/dev/null 2>&1; sleep 30"], timeout=1)
    assert time.monotonic() - start < 5


# --- files ---------------------------------------------------------------------------------


def test_write_file_is_0600_with_exact_content(host: Host, tmp_path: Path) -> None:
    path = tmp_path / "deploy" / "demo.env"
    data = b"HF_TOKEN=" + SECRET.encode() + b"\n\x00\xffbinary"
    host.write_file(str(path), data)
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_write_file_other_mode(host: Host, tmp_path: Path) -> None:
    path = tmp_path / "script.sh"
    host.write_file(str(path), b"#!/bin/sh\n", mode=0o755)
    assert stat.S_IMODE(path.stat().st_mode) == 0o755


def test_write_file_replaces_a_world_readable_file(host: Host, tmp_path: Path) -> None:
    folder = tmp_path / "deploy"
    folder.mkdir()
    path = folder / "demo.env"
    path.write_text("old")
    path.chmod(0o666)
    host.write_file(str(path), b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in folder.iterdir()] == ["demo.env"]  # no temporary left


def test_write_file_failure_is_clear(host: Host, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises((FluxdeployError, OSError)):
        host.write_file(str(blocker / "below" / "x"), b"data")


def test_secret_in_write_file_never_appears_in_commands(server: SSHServer, tmp_path: Path) -> None:
    with ssh_host(server) as remote:
        remote.write_file(str(tmp_path / "s.env"), f"HF_TOKEN={SECRET}\n".encode())
    commands = server.commands()
    assert commands, "the session wrapper recorded nothing"
    assert not any(SECRET in command for command in commands)
    assert (tmp_path / "s.env").read_text() == f"HF_TOKEN={SECRET}\n"


def _all_cmdlines() -> list[str]:
    lines = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            lines.append(raw.replace(b"\0", b" ").decode(errors="replace"))
    return lines


def test_secret_on_stdin_is_not_in_ps_on_the_host(server: SSHServer) -> None:
    marker = "fluxdeploy-ps-probe-4711"
    samples: list[list[str]] = []
    with ssh_host(server) as remote:
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append(_all_cmdlines())
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            result = remote.run(
                ["sh", "-c", f"read -r secret; sleep 1; echo {marker} ${{#secret}}"],
                stdin=SECRET.encode() + b"\n",
            )
        finally:
            done.set()
            sampler.join()
    assert result.stdout.strip() == f"{marker} {len(SECRET)}"
    seen = [line for snapshot in samples for line in snapshot]
    assert any(marker in line for line in seen), "the sampler never saw the command"
    assert not any(SECRET in line for line in seen)


# --- port forwarding -----------------------------------------------------------------------


class _EchoPathHandler(http.server.BaseHTTPRequestHandler):
    """Answers GET /x with "/x" after 0.2 s; counts how many requests were in flight at most."""

    in_flight = 0
    most_in_flight = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        cls = type(self)
        with cls.lock:
            cls.in_flight += 1
            cls.most_in_flight = max(cls.most_in_flight, cls.in_flight)
        time.sleep(0.2)  # keep several requests in flight at once
        with cls.lock:
            cls.in_flight -= 1
        body = (self.path * (5000 if self.path == "/big" else 1)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoPathHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.read().decode()


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_forward_reaches_a_server_behind_the_host(server: SSHServer, http_port: int) -> None:
    with ssh_host(server) as remote, remote.forward(http_port) as local_port:
        assert local_port != http_port
        paths = [f"/request-{i}" for i in range(12)]
        _EchoPathHandler.most_in_flight = 0
        with ThreadPoolExecutor(max_workers=12) as pool:
            bodies = list(pool.map(lambda p: _get(local_port, p), paths))
        assert bodies == paths
        assert _EchoPathHandler.most_in_flight > 1, "the tunnel served one request at a time"
        assert _get(local_port, "/big") == "/big" * 5000
    assert _refused(local_port)


def test_forward_to_a_chosen_local_port(server: SSHServer, http_port: int) -> None:
    wanted = free_port(["127.0.0.1"])
    with ssh_host(server) as remote, remote.forward(http_port, local_port=wanted) as local_port:
        assert local_port == wanted
        assert _get(local_port, "/chosen") == "/chosen"


def test_forward_to_a_busy_local_port_is_a_clear_error(server: SSHServer, http_port: int) -> None:
    remote = ssh_host(server)
    with pytest.raises(FluxdeployError, match="--local-port"):
        remote.forward(http_port, local_port=http_port).__enter__()
    remote.close()


def test_forward_target_is_seen_from_the_host(
    two_address_server: SSHServer, http_port: int
) -> None:
    # log in through 127.0.0.2; the server listens on 127.0.0.1 "of the host"
    server = two_address_server
    with SSHHost("127.0.0.2", **server.host_kwargs()) as remote:  # type: ignore[arg-type]
        assert remote.run(["true"]).ok
        with remote.forward(http_port, remote_host="127.0.0.1") as local_port:
            assert _get(local_port, "/via-second-address") == "/via-second-address"


def test_forward_to_a_closed_port_drops_only_that_connection(
    server: SSHServer, http_port: int
) -> None:
    closed = free_port(["127.0.0.1"])
    with ssh_host(server) as remote:
        with (
            remote.forward(closed) as dead_port,
            socket.create_connection(("127.0.0.1", dead_port), timeout=5) as conn,
        ):
            conn.settimeout(5)
            assert conn.recv(10) == b""  # closed by the tunnel, no hang
        with remote.forward(http_port) as local_port:
            assert _get(local_port, "/still-works") == "/still-works"
        assert remote.run(["true"]).ok


def test_local_host_forward_yields_the_port_itself() -> None:
    with LocalHost().forward(8123) as port:
        assert port == 8123


# --- host keys -----------------------------------------------------------------------------


def _ssh_keygen_fingerprint(public_key: str, tmp_path: Path) -> str:
    path = tmp_path / "key.pub"
    path.write_text(public_key + "\n")
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(path)], check=True, capture_output=True, text=True
    )
    return out.stdout.split()[1]


def test_fingerprint_matches_openssh(server: SSHServer, tmp_path: Path) -> None:
    assert fingerprint(server.host_public_key) == _ssh_keygen_fingerprint(
        server.host_public_key, tmp_path
    )


def test_first_connection_trusts_and_reports_the_host_key(server: SSHServer) -> None:
    reported: list[str] = []
    with ssh_host(server, on_new_host_key=reported.append) as remote:
        assert remote.run(["true"]).ok
        assert remote.host_key == server.host_public_key
    assert reported == [server.host_public_key]


def test_pinned_key_connects_without_reporting(server: SSHServer) -> None:
    reported: list[str] = []
    with ssh_host(
        server, pinned_host_key=server.host_public_key, on_new_host_key=reported.append
    ) as remote:
        assert remote.run(["echo", "ok"]).stdout == "ok\n"
    assert reported == []


@pytest.mark.parametrize("new_type", ["ed25519", "rsa"])
def test_changed_host_key_is_refused(server: SSHServer, tmp_path: Path, new_type: str) -> None:
    pinned = server.host_public_key
    server.restart(new_host_key=True, host_key_type=new_type)
    assert server.host_public_key != pinned
    ran_before = len(server.commands())
    remote = ssh_host(server, pinned_host_key=pinned, on_new_host_key=lambda key: None)
    with pytest.raises(HostKeyMismatch) as caught:
        remote.run(["true"])
    error = caught.value
    text = str(error)
    assert _ssh_keygen_fingerprint(pinned, tmp_path) in text
    assert _ssh_keygen_fingerprint(server.host_public_key, tmp_path) in text
    assert "replaced" in text and "man in the middle" in text
    assert "fluxdeploy down" in text
    assert error.offered_fingerprint == fingerprint(server.host_public_key)
    assert len(server.commands()) == ran_before, "a command ran despite the changed key"


def test_key_learned_on_first_use_is_pinned_for_reconnects(server: SSHServer) -> None:
    reported: list[str] = []
    remote = ssh_host(server, on_new_host_key=reported.append)
    assert remote.run(["true"]).ok
    remote.close()
    server.restart(new_host_key=True)
    with pytest.raises(HostKeyMismatch):
        remote.run(["true"])
    assert len(reported) == 1


def test_new_key_is_reported_only_after_login(server: SSHServer, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger_key"
    generate_key(stranger)
    reported: list[str] = []
    with pytest.raises(SSHAuthError):
        ssh_host(server, key_path=str(stranger), on_new_host_key=reported.append).connect()
    assert reported == []


def test_invalid_pinned_key_is_a_clear_error(server: SSHServer) -> None:
    with pytest.raises(FluxdeployError, match="not a valid public key"):
        ssh_host(server, pinned_host_key="ssh-ed25519 not-base64!").connect()


# --- authentication ------------------------------------------------------------------------


def test_wrong_client_key_is_a_clear_auth_error(server: SSHServer, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger_key"
    generate_key(stranger)
    with pytest.raises(SSHAuthError) as caught:
        ssh_host(server, key_path=str(stranger)).connect()
    text = str(caught.value)
    assert server.user in text and f"{server.host}:{server.port}" in text and str(stranger) in text
    assert "authorized_keys" in text


@pytest.mark.parametrize("key_type", ["rsa", "ecdsa", "ed25519"])
def test_key_types(server: SSHServer, tmp_path: Path, key_type: str) -> None:
    key = tmp_path / f"id_{key_type}"
    server.authorize(generate_key(key, key_type))
    with ssh_host(server, key_path=str(key)) as remote:
        assert remote.run(["echo", key_type]).stdout == f"{key_type}\n"


def test_agent_is_used_without_key_path(
    server: SSHServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        env = {**os.environ, "SSH_AUTH_SOCK": str(socket_path)}
        subprocess.run(
            ["ssh-add", str(server.client_key_path)], env=env, check=True, capture_output=True
        )
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
        monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh keys to fall back on
        with ssh_host(server, key_path=None) as remote:
            assert remote.run(["echo", "agent"]).stdout == "agent\n"
    finally:
        agent.terminate()
        agent.wait()


def test_no_key_and_no_agent_is_a_clear_error(
    server: SSHServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(SSHAuthError) as caught:
        ssh_host(server, key_path=None).connect()
    assert server.user in str(caught.value)


def test_missing_key_file_is_a_clear_error(server: SSHServer, tmp_path: Path) -> None:
    with pytest.raises(SSHAuthError, match="does not exist"):
        ssh_host(server, key_path=str(tmp_path / "nope")).connect()


def test_label_names_user_host_and_port(server: SSHServer) -> None:
    assert ssh_host(server).label == f"{server.user}@127.0.0.1:{server.port}"


def test_reconnects_after_close(server: SSHServer) -> None:
    remote = ssh_host(server)
    assert remote.run(["true"]).ok
    remote.close()
    assert remote.run(["true"]).ok
    remote.close()


def test_lost_connection_is_a_clear_error(server: SSHServer) -> None:
    remote = ssh_host(server)
    assert remote.run(["true"]).ok
    # kill the sshd process serving this connection, as a dying VM would
    serving = remote.run(["sh", "-c", "ps -o ppid= -p $PPID"]).stdout.strip()
    with pytest.raises(SSHConnectError, match="lost"):
        remote.run(["sh", "-c", f"kill -9 {serving}; sleep 5"], timeout=30)
    assert not remote.connected
    assert remote.run(["echo", "back"]).stdout == "back\n"  # reconnects on next use
    remote.close()


# --- waiting for sshd ----------------------------------------------------------------------


def test_wait_for_ssh_succeeds_when_sshd_comes_up_late(tmp_path: Path) -> None:
    server = SSHServer(tmp_path / "late")
    attempts: list[tuple[int, str]] = []
    starter = server.start_later(2.0)
    try:
        remote = wait_for_ssh(
            lambda: ssh_host(server, connect_timeout=1.0),
            timeout=30,
            on_attempt=lambda n, error: attempts.append((n, error.message)),
            interval=0.3,
        )
        with remote:
            assert remote.run(["echo", "up"]).stdout == "up\n"
        assert attempts and attempts[0][0] == 1
        assert "connection refused" in attempts[0][1]
    finally:
        starter.join()
        server.stop()


def test_wait_for_ssh_gives_up_with_a_clear_error(tmp_path: Path) -> None:
    server = SSHServer(tmp_path / "never")  # never started: nothing listens
    start = time.monotonic()
    with pytest.raises(SSHTimeout) as caught:
        wait_for_ssh(lambda: ssh_host(server, connect_timeout=1.0), timeout=2, interval=0.5)
    assert time.monotonic() - start < 6
    text = str(caught.value)
    assert f"127.0.0.1:{server.port}" in text and "did not answer within 2 s" in text
    assert "connection refused" in text


def test_wait_for_ssh_retries_a_server_without_banner(tmp_path: Path) -> None:
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(silent.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    attempts: list[FluxdeployError] = []
    try:
        with pytest.raises(SSHTimeout):
            wait_for_ssh(
                lambda: SSHHost("127.0.0.1", port=port, connect_timeout=0.5),
                timeout=1.5,
                on_attempt=lambda n, error: attempts.append(error),
                interval=0.1,
            )
    finally:
        stop.set()
        thread.join()
        silent.close()
        for conn in accepted:
            conn.close()
    assert len(attempts) >= 2
    assert all(isinstance(error, SSHConnectError) for error in attempts)


def test_wait_for_ssh_does_not_retry_auth_errors(server: SSHServer, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    generate_key(stranger)
    calls = []

    def make() -> SSHHost:
        calls.append(1)
        return ssh_host(server, key_path=str(stranger))

    with pytest.raises(SSHAuthError):
        wait_for_ssh(make, timeout=30)
    assert len(calls) == 1


def test_second_listen_address(two_address_server: SSHServer) -> None:
    for address in ("127.0.0.1", "127.0.0.2"):
        with SSHHost(address, **two_address_server.host_kwargs()) as remote:  # type: ignore[arg-type]
            assert remote.run(["echo", address]).stdout == f"{address}\n"
