"""`SSHHost`: a machine reached over SSH with paramiko (commands, files, port forwards), and
`wait_for_ssh` for a machine that is still booting.

Commands are quoted with ``shlex.join``. paramiko is imported inside the functions that need
it, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.remote.host_protocol import (
    POLL_S,
    READ_CHUNK,
    LineSplitter,
    OutputCallback,
    RunResult,
    Stdin,
    stdin_chunks,
    timed_out,
    write_file_script,
)
from intelligensi_deploy.remote.ssh_errors import (
    HostKeyMismatch,
    SSHAuthError,
    SSHConnectError,
    SSHTimeout,
)
from intelligensi_deploy.remote.ssh_keys import (
    fingerprint,
    key_line,
    load_private_key,
    parse_key_line,
    tofu_policy,
)
from intelligensi_deploy.remote.tunnel import PortForward

if TYPE_CHECKING:  # pragma: no cover
    import paramiko
    from typing_extensions import Self

class SSHHost:
    """A machine reached over SSH with paramiko; connects on first use (or `connect()`).

    Host keys: `pinned_host_key` ("ssh-ed25519 AAAA...") must match what the server offers,
    else `HostKeyMismatch`. Without a pin the first key seen is trusted, reported through
    `on_new_host_key` and pinned for the life of this object (`host_key` gives it back).
    Auth: the private key at `key_path`, or the ssh-agent and ~/.ssh keys when it is None.
    """

    def __init__(
        self,
        hostname: str,
        *,
        port: int = 22,
        user: str = "ubuntu",
        key_path: str | None = None,
        pinned_host_key: str | None = None,
        on_new_host_key: Callable[[str], None] | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self.hostname = hostname
        self.port = port
        self.user = user
        self.key_path = key_path
        self.pinned_host_key = pinned_host_key
        self.on_new_host_key = on_new_host_key
        self.connect_timeout = connect_timeout
        self.label = f"{user}@{hostname}:{port}"
        self.host_key: str | None = pinned_host_key
        self._client: paramiko.SSHClient | None = None
        self._learned_key: str | None = None
        self._lock = threading.Lock()

    # connection

    def connect(self) -> None:
        """Open the SSH connection now (idempotent); raises the typed errors of this module."""
        with self._lock:
            if self.connected:
                return
            if self._client is not None:
                self._client.close()
            self._client = self._open_client()

    def _open_client(self) -> paramiko.SSHClient:
        import paramiko  # lazy: paramiko costs ~0.1 s; importing hosts must stay cheap

        client = paramiko.SSHClient()
        known_name = self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"
        if self.host_key:  # pinned, or learned on an earlier connection of this object
            pinned = parse_key_line(self.host_key)
            client.get_host_keys().add(known_name, pinned.get_name(), pinned)
        client.set_missing_host_key_policy(tofu_policy(self._trust_new_key))
        self._learned_key = None
        pkey = load_private_key(self.key_path) if self.key_path else None
        try:
            client.connect(
                self.hostname,
                port=self.port,
                username=self.user,
                pkey=pkey,
                allow_agent=pkey is None,
                look_for_keys=pkey is None,
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
                channel_timeout=self.connect_timeout,
            )
        except FluxdeployError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyMismatch(
                self.label,
                fingerprint(key_line(exc.expected_key)),
                fingerprint(key_line(exc.key)),
            ) from None
        except paramiko.AuthenticationException as exc:
            client.close()
            key = self.key_path or "your ssh-agent / ~/.ssh keys"
            raise SSHAuthError(
                f"{self.hostname}:{self.port} refused SSH login as {self.user!r} with "
                f"{key} ({exc}).",
                fix=f"Check that the public key of {key} is in ~{self.user}/.ssh/"
                "authorized_keys on the host (for Lambda: the SSH key named in the preset), "
                "and that the user name is right (Lambda VMs use 'ubuntu').",
                doc="ssh-auth",
            ) from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            client.close()
            if "No authentication methods available" in str(exc):
                raise SSHAuthError(
                    f"No SSH key to log in to {self.hostname}:{self.port} as {self.user!r}: "
                    "no key path was given and neither an ssh-agent nor ~/.ssh keys were found.",
                    fix="Set the preset's ssh key path, or start ssh-agent and `ssh-add` your key.",
                    doc="ssh-auth",
                ) from None
            raise SSHConnectError(
                f"Could not reach SSH on {self.hostname}:{self.port}: {_describe(exc)}",
                fix="Check the address and that the machine is up and port "
                f"{self.port} is open; a freshly booted VM may need a minute more.",
                doc="ssh-connect",
            ) from exc
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(30)
        if self._learned_key is not None:
            self.host_key = self._learned_key
            if self.on_new_host_key is not None:
                self.on_new_host_key(self._learned_key)
        return client

    @property
    def connected(self) -> bool:
        """Whether the SSH connection is open now (no attempt to open it)."""
        transport = self._client.get_transport() if self._client is not None else None
        return transport is not None and transport.is_active()

    def _trust_new_key(self, key: paramiko.PKey) -> None:
        line = key_line(key)
        if self.host_key:  # pinned key of another type than the one offered
            raise HostKeyMismatch(self.label, fingerprint(self.host_key), fingerprint(line))
        self._learned_key = line  # reported once login succeeded

    def _transport(self) -> paramiko.Transport:
        self.connect()
        assert self._client is not None
        transport = self._client.get_transport()
        assert transport is not None
        return transport

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # commands

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: Stdin = None,
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> RunResult:
        """Run `argv` (quoted with shlex.join) on the host; stdin is sent, then closed."""
        argv = tuple(argv)
        channel = self._open_session()
        try:
            channel.exec_command(shlex.join(argv))
            # stdin goes in a thread, so output is read meanwhile (no deadlock on full windows)
            threading.Thread(target=_send_stdin, args=(channel, stdin), daemon=True).start()
            out, err = LineSplitter(on_output), LineSplitter(on_output)
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                if channel.recv_ready():
                    out.feed(channel.recv(READ_CHUNK))
                elif channel.recv_stderr_ready():
                    err.feed(channel.recv_stderr(READ_CHUNK))
                elif channel.exit_status_ready() and (channel.eof_received or channel.closed):
                    break  # EOF comes after all output: the buffers are drained
                elif deadline is not None and time.monotonic() > deadline:
                    raise timed_out(self.label, argv, timeout)
                elif channel.eof_received:
                    channel.status_event.wait(POLL_S)  # output done, exit status pending
                else:
                    select.select([channel], [], [], POLL_S)
            returncode = channel.recv_exit_status()
            if returncode == -1 and not self.connected:
                raise self._lost(f"while running `{shlex.join(argv)}`")
            return RunResult(argv, returncode, out.finish(), err.finish())
        finally:
            channel.close()

    def open_session(self) -> paramiko.Channel:
        """A new session channel on the connection (remote/interactive.py: a terminal)."""
        return self._open_session()

    def _open_session(self) -> paramiko.Channel:
        import paramiko  # lazy: as in _open_client

        try:
            return self._transport().open_session(timeout=self.connect_timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise self._lost(f"when opening a session ({_describe(exc)})") from exc

    def _lost(self, when: str) -> SSHConnectError:
        self.close()
        return SSHConnectError(
            f"The SSH connection to {self.label} was lost {when}.",
            fix="Check that the machine is still running and reachable, then run the command "
            "again.",
            doc="ssh-connect",
        )

    def write_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        """Write `data` to `path` on the host (via stdin), atomically and with `mode` from the start.

        Relative paths are relative to the login folder; parent folders are created (0700).
        """
        result = self.run(write_file_script(path, mode), stdin=data, timeout=120)
        if not result.ok:
            raise FluxdeployError(
                f"Could not write {path} on {self.label}: {result.stderr.strip()}",
                fix=f"Check that {self.user} may write to {os.path.dirname(path) or '~'} there.",
            )

    # port forwarding

    @contextlib.contextmanager
    def forward(
        self, remote_port: int, *, local_port: int = 0, remote_host: str = "127.0.0.1"
    ) -> Iterator[int]:
        """Like `ssh -L`: yields a local port on 127.0.0.1 that reaches remote_host:remote_port."""
        tunnel = PortForward(self._transport(), remote_host, remote_port, local_port)
        try:
            yield tunnel.local_port
        finally:
            tunnel.close()


def _send_stdin(channel: paramiko.Channel, data: Stdin) -> None:
    """Send `data`, then EOF; a command that exits without reading it all is not an error."""
    try:
        for chunk in stdin_chunks(data):
            channel.sendall(chunk)
        channel.shutdown_write()
    except (OSError, EOFError):
        pass


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED:
        return "connection refused"
    text = str(exc) or type(exc).__name__
    if "NoValidConnectionsError" in type(exc).__name__ or "Unable to connect" in text:
        return "connection refused"
    return text


def wait_for_ssh(
    make_host: Callable[[], SSHHost],
    timeout: float,
    on_attempt: Callable[[int, FluxdeployError], None] | None = None,
    *,
    interval: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> SSHHost:
    """Connect with a fresh host from `make_host` until it works; returns the connected host.

    Retries only what a booting machine does (refused, timed out, no SSH banner yet), calling
    `on_attempt(attempt, error)` after each failure. Host key and auth errors are raised at
    once. After `timeout` seconds, raises `SSHTimeout` with the last error.
    """
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        attempt += 1
        host = make_host()
        try:
            host.connect()
            return host
        except SSHConnectError as exc:
            host.close()
            if on_attempt is not None:
                on_attempt(attempt, exc)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SSHTimeout(
                    f"SSH on {host.hostname}:{host.port} did not answer within {timeout:g} s "
                    f"({attempt} attempts; last: {exc.message})",
                    fix="Check that the machine is running and that TCP port "
                    f"{host.port} is open to you; a GPU VM can take several minutes to boot. "
                    "Run the command again to keep waiting.",
                    doc="ssh-connect",
                ) from exc
            sleep(min(interval, remaining))
