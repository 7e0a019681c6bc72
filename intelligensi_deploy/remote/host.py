"""Hosts that run commands: the local machine (subprocess) or a remote one over SSH (paramiko).

A command is always an argv list. Over SSH it is quoted with ``shlex.join``; secrets never go
into argv: they travel on stdin or through `Host.write_file` (which sends the data on stdin).
paramiko is imported inside the functions that need it, so importing this module stays cheap.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
import select
import selectors
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Protocol

from intelligensi_deploy.errors import FluxdeployError

if TYPE_CHECKING:  # pragma: no cover
    import paramiko
    from typing_extensions import Self

OutputCallback = Callable[[str], None]
# What `run` sends on stdin: bytes, or a binary file read to its end in chunks (a build
# context can be hundreds of MB: it is streamed, never held in memory whole).
Stdin = bytes | IO[bytes] | None

_READ_CHUNK = 32768
_POLL_S = 0.2


@dataclass(frozen=True)
class RunResult:
    """What a finished command returned; stdout and stderr are decoded as UTF-8."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def output(self) -> str:
        """stdout and stderr together (stdout first), for error messages and diagnosis."""
        return "\n".join(part for part in (self.stdout, self.stderr) if part)


class Host(Protocol):
    """Somewhere to run commands: `LocalHost` or `SSHHost`."""

    label: str

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: Stdin = None,
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> RunResult: ...

    def write_file(self, path: str, data: bytes, mode: int = 0o600) -> None: ...

    def forward(
        self, remote_port: int, *, local_port: int = 0, remote_host: str = "127.0.0.1"
    ) -> AbstractContextManager[int]: ...

    def close(self) -> None: ...


class CommandTimeout(FluxdeployError):
    """A command ran longer than its timeout and was stopped."""


class SSHConnectError(FluxdeployError):
    """The SSH server could not be reached (refused, timed out, no banner): worth retrying."""


class SSHAuthError(FluxdeployError):
    """The SSH server refused our key."""


class HostKeyMismatch(FluxdeployError):
    """The server presented a host key other than the one pinned for this deployment."""

    def __init__(
        self,
        label: str,
        pinned_fingerprint: str,
        offered_fingerprint: str,
        *,
        fix: str | None = None,
    ) -> None:
        self.label = label
        self.pinned_fingerprint = pinned_fingerprint
        self.offered_fingerprint = offered_fingerprint
        super().__init__(
            f"The SSH host key of {label} has changed, so fluxdeploy refused to connect.\n"
            f"  pinned (first connection): {pinned_fingerprint}\n"
            f"  offered now:               {offered_fingerprint}\n"
            "Either the machine at this address was replaced (for example the VM was "
            "terminated and a new one got the same IP), or someone is intercepting the "
            "connection (a man in the middle).",
            fix=fix
            or (
                "If you know the VM was replaced, run `fluxdeploy down` for the old deployment "
                "(or forget its pinned host key in the deployment state) and run `fluxdeploy "
                "up` again. If you did not replace it, do not connect: check with your cloud "
                "provider which machine holds this address."
            ),
            doc="ssh-host-key-changed",
        )


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class _LineSplitter:
    """Feeds complete lines of a byte stream to a callback and keeps everything it saw."""

    def __init__(self, on_line: OutputCallback | None) -> None:
        self._on_line = on_line
        self._chunks: list[bytes] = []
        self._pending = b""

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        if self._on_line is None:
            return
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            self._on_line(_decode(line).rstrip("\r"))

    def finish(self) -> str:
        if self._on_line is not None and self._pending:
            self._on_line(_decode(self._pending).rstrip("\r"))
        self._pending = b""
        return _decode(b"".join(self._chunks))


def _write_file_script(path: str, mode: int) -> list[str]:
    """argv of a POSIX sh script writing stdin to `path` atomically, never more open than `mode`.

    Parent folders are created (0700), the data lands in a temporary file created under a
    umask that already yields `mode` (or stricter), then `chmod` and `mv` put it in place.
    """
    umask = (~mode & 0o777) | 0o077
    script = (
        'umask 077; mkdir -p -- "$(dirname -- "$1")" || exit 1; umask "$3"; '
        'tmp="$1.fluxdeploy-tmp.$$"; '
        'if cat > "$tmp" && chmod "$2" "$tmp" && mv -f -- "$tmp" "$1"; then exit 0; fi; '
        'rm -f -- "$tmp"; exit 1'
    )
    return ["sh", "-c", script, "fluxdeploy-write-file", path, f"{mode:o}", f"{umask:03o}"]


class LocalHost:
    """This machine: commands run with subprocess, files are written directly."""

    label = "local"

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: Stdin = None,
        timeout: float | None = None,
        on_output: OutputCallback | None = None,
    ) -> RunResult:
        """Run `argv`; a missing program gives returncode 127, like a shell would."""
        argv = tuple(argv)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except FileNotFoundError:
            return RunResult(argv, 127, "", f"{argv[0]}: command not found\n")
        except PermissionError as exc:
            return RunResult(argv, 126, "", f"{argv[0]}: {exc.strerror}\n")
        feeder = threading.Thread(target=_feed_stdin, args=(proc, stdin), daemon=True)
        feeder.start()
        out, err = _LineSplitter(on_output), _LineSplitter(on_output)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            _read_until_eof({proc.stdout: out, proc.stderr: err}, deadline)
            returncode = proc.wait(
                None if deadline is None else max(0, deadline - time.monotonic())
            )
        except subprocess.TimeoutExpired:
            raise _timed_out(self.label, argv, timeout) from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            feeder.join()
        stdout, stderr = out.finish(), err.finish()
        return RunResult(argv, returncode, stdout, stderr)

    def write_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        """Write `data` to `path` atomically; the file has `mode` from its creation on."""
        path = os.path.expanduser(path)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, mode=0o700, exist_ok=True)
        tmp = f"{path}.fluxdeploy-tmp.{os.getpid()}.{threading.get_ident()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode & 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def forward(
        self, remote_port: int, *, local_port: int = 0, remote_host: str = "127.0.0.1"
    ) -> Iterator[int]:
        """Nothing to forward locally: yields `remote_port` itself."""
        yield remote_port

    def close(self) -> None:
        pass


def _read_until_eof(streams: dict[Any, _LineSplitter], deadline: float | None) -> None:
    """Feed each pipe's bytes to its splitter until all are at EOF (TimeoutExpired at deadline)."""
    with selectors.DefaultSelector() as selector:
        for pipe in streams:
            selector.register(pipe, selectors.EVENT_READ)
        while selector.get_map():
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("", 0)
            for key, _ in selector.select(_POLL_S):
                chunk = os.read(key.fd, _READ_CHUNK)
                if chunk:
                    streams[key.fileobj].feed(chunk)
                else:
                    selector.unregister(key.fileobj)


def _timed_out(label: str, argv: Sequence[str], timeout: float | None) -> CommandTimeout:
    return CommandTimeout(
        f"`{shlex.join(argv)}` on {label} ran longer than {timeout:g} s and was stopped.",
        fix="Run it again with more time, or look at the host to see why it is slow.",
    )


def _chunks(data: Stdin) -> Iterator[bytes]:
    """`data` in pieces: bytes as one piece, a file read to its end."""
    if data is None:
        return
    if isinstance(data, (bytes, bytearray, memoryview)):
        if data:
            yield bytes(data)
        return
    yield from iter(lambda: data.read(1 << 20), b"")


def _feed_stdin(proc: subprocess.Popen[bytes], data: Stdin) -> None:
    assert proc.stdin is not None
    try:
        for chunk in _chunks(data):
            proc.stdin.write(chunk)
    except BrokenPipeError:
        pass
    finally:
        with contextlib.suppress(BrokenPipeError, OSError):
            proc.stdin.close()


# --- host keys -----------------------------------------------------------------------------


def fingerprint(host_key: str) -> str:
    """OpenSSH's SHA256 fingerprint ("SHA256:...") of a "type base64" public key line."""
    blob = base64.b64decode(host_key.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def _key_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def _parse_key_line(host_key: str) -> paramiko.PKey:
    import paramiko

    try:
        key_type, b64 = host_key.split()[:2]
        return paramiko.PKey.from_type_string(key_type, base64.b64decode(b64))
    except Exception as exc:  # any parse failure means the same thing
        raise FluxdeployError(
            f"The pinned SSH host key {host_key[:40]!r}... is not a valid public key line.",
            fix='Pin a key as "TYPE BASE64", e.g. "ssh-ed25519 AAAAC3Nza...".',
        ) from exc


def _load_private_key(key_path: str) -> paramiko.PKey:
    import paramiko

    path = os.path.expanduser(key_path)
    if not os.path.exists(path):
        raise SSHAuthError(
            f"The SSH private key {key_path} does not exist.",
            fix="Set the preset's ssh key path to an existing private key (ed25519, rsa or "
            "ecdsa), or leave it empty to use your ssh-agent.",
            doc="ssh-auth",
        )
    try:
        return paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException as exc:
        raise SSHAuthError(
            f"The SSH private key {key_path} is protected by a passphrase.",
            fix=f"Load it into your agent (`ssh-add {key_path}`) and leave the key path empty, "
            "or use a key without a passphrase.",
            doc="ssh-auth",
        ) from exc
    except (paramiko.SSHException, ValueError, OSError) as exc:
        raise SSHAuthError(
            f"Could not read the SSH private key {key_path}: {exc}",
            fix="Use an OpenSSH or PEM private key of type ed25519, rsa or ecdsa.",
            doc="ssh-auth",
        ) from exc


def _tofu_policy(on_unknown: Callable[[Any], None]) -> Any:
    import paramiko

    class TrustOnFirstUse(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            on_unknown(key)
            client.get_host_keys().add(hostname, key.get_name(), key)

    return TrustOnFirstUse()


# --- SSH -----------------------------------------------------------------------------------


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
        import paramiko

        client = paramiko.SSHClient()
        known_name = self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"
        if self.host_key:  # pinned, or learned on an earlier connection of this object
            pinned = _parse_key_line(self.host_key)
            client.get_host_keys().add(known_name, pinned.get_name(), pinned)
        client.set_missing_host_key_policy(_tofu_policy(self._trust_new_key))
        self._learned_key = None
        pkey = _load_private_key(self.key_path) if self.key_path else None
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
                fingerprint(_key_line(exc.expected_key)),
                fingerprint(_key_line(exc.key)),
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
        line = _key_line(key)
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
            out, err = _LineSplitter(on_output), _LineSplitter(on_output)
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                if channel.recv_ready():
                    out.feed(channel.recv(_READ_CHUNK))
                elif channel.recv_stderr_ready():
                    err.feed(channel.recv_stderr(_READ_CHUNK))
                elif channel.exit_status_ready() and (channel.eof_received or channel.closed):
                    break  # EOF comes after all output: the buffers are drained
                elif deadline is not None and time.monotonic() > deadline:
                    raise _timed_out(self.label, argv, timeout)
                elif channel.eof_received:
                    channel.status_event.wait(_POLL_S)  # output done, exit status pending
                else:
                    select.select([channel], [], [], _POLL_S)
            returncode = channel.recv_exit_status()
            if returncode == -1 and not self.connected:
                raise self._lost(f"while running `{shlex.join(argv)}`")
            return RunResult(argv, returncode, out.finish(), err.finish())
        finally:
            channel.close()

    def _open_session(self) -> paramiko.Channel:
        import paramiko

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
        result = self.run(_write_file_script(path, mode), stdin=data, timeout=120)
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
        tunnel = _Tunnel(self._transport(), remote_host, remote_port, local_port)
        try:
            yield tunnel.local_port
        finally:
            tunnel.close()


def _send_stdin(channel: Any, data: Stdin) -> None:
    """Send `data`, then EOF; a command that exits without reading it all is not an error."""
    try:
        for chunk in _chunks(data):
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


class _Tunnel:
    """A local listening socket whose connections are relayed over direct-tcpip channels."""

    def __init__(
        self, transport: paramiko.Transport, remote_host: str, remote_port: int, local_port: int
    ) -> None:
        self._transport = transport
        self._target = (remote_host, remote_port)
        try:
            self._listener = socket.create_server(("127.0.0.1", local_port))
        except OSError as exc:
            raise FluxdeployError(
                f"Cannot listen on local port {local_port} for the tunnel: {exc.strerror}.",
                fix="Choose another port (--local-port), or 0 for any free one.",
            ) from None
        self._listener.settimeout(_POLL_S)
        self.local_port: int = self._listener.getsockname()[1]
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._open: set[Any] = set()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"fluxdeploy-forward-{self.local_port}", daemon=True
        )
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                conn, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._relay, args=(conn, peer), daemon=True)
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _relay(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        try:
            channel = self._transport.open_channel("direct-tcpip", self._target, peer, timeout=10)
        except Exception:  # noqa: BLE001 - the target was refused: drop this connection only
            conn.close()
            return
        with self._lock:
            self._open.update((conn, channel))
        try:
            _pump(conn, channel, self._closing)
        finally:
            with self._lock:
                self._open.difference_update((conn, channel))
            channel.close()
            conn.close()

    def close(self) -> None:
        """Stop accepting, close every relayed connection and wait for the threads to end."""
        self._closing.set()
        self._listener.close()
        self._acceptor.join(timeout=5)
        with self._lock:
            for endpoint in list(self._open):
                with contextlib.suppress(Exception):
                    endpoint.close()
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)


def _pump(conn: socket.socket, channel: Any, stop: threading.Event) -> None:
    """Copy bytes both ways until both sides finished sending; half-closes pass through."""
    reading = [conn, channel]
    try:
        while reading and not stop.is_set():
            readable, _, _ = select.select(reading, [], [], _POLL_S)
            if conn in readable:
                data = conn.recv(_READ_CHUNK)
                if data:
                    channel.sendall(data)
                else:
                    channel.shutdown_write()
                    reading.remove(conn)
            if channel in readable:
                data = channel.recv(_READ_CHUNK)
                if data:
                    conn.sendall(data)
                else:
                    with contextlib.suppress(OSError):
                        conn.shutdown(socket.SHUT_WR)
                    reading.remove(channel)
                    if conn in reading and channel.closed:
                        return
    except (OSError, EOFError):
        pass


# --- waiting for sshd ----------------------------------------------------------------------


class SSHTimeout(FluxdeployError):
    """SSH did not answer within the allowed time."""


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
