"""A terminal session over SSH, as `ssh` gives one: for `fluxdeploy ssh` and `exec`.

With a terminal on stdin the session gets a pty of the same size (following the window on
SIGWINCH) and the local terminal goes raw, so Ctrl-C, Ctrl-D and full-screen programs reach
the remote side; the terminal's settings come back when the session ends, however it ends.
Without one (a pipe, a script), the command runs without a pty: stdin is sent until its end,
stdout and stderr stay apart, and the exit status comes back as the return value (255 when
the connection gave none, as ssh does).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from intelligensi_deploy.remote.host_protocol import POLL_S, READ_CHUNK

if TYPE_CHECKING:  # pragma: no cover
    import paramiko

    from intelligensi_deploy.remote.ssh_host import SSHHost

NO_STATUS = 255


def run_session(host: SSHHost, command: str | None, *, tty: bool | None = None,
                stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None,
                stderr: IO[bytes] | None = None) -> int:
    """Run `command` (a shell command line; None: a login shell) on `host`; its exit status.

    `tty` None: a pty exactly when stdin is a terminal."""
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    stderr = stderr or sys.stderr.buffer
    use_pty = _is_terminal(stdin) if tty is None else tty
    channel = host.open_session()
    try:
        if use_pty:
            size = shutil.get_terminal_size()
            channel.get_pty(term=os.environ.get("TERM", "xterm"), width=size.columns,
                            height=size.lines)
        if command is None:
            channel.invoke_shell()
        else:
            channel.exec_command(command)
        if use_pty:
            with _raw(stdin), _follow_window(channel):
                _pump(channel, stdin, stdout, stderr, terminal=True)
        else:
            threading.Thread(target=_send, args=(channel, stdin), daemon=True).start()
            _pump(channel, None, stdout, stderr, terminal=False)
        status = channel.recv_exit_status() if channel.exit_status_ready() else -1
        return NO_STATUS if status < 0 else status
    finally:
        channel.close()


def _is_terminal(stream: IO[bytes]) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return False


def _pump(channel: paramiko.Channel, stdin: IO[bytes] | None, stdout: IO[bytes],
          stderr: IO[bytes], *, terminal: bool) -> None:
    """Copy the channel's output to ours (and, on a terminal, our keys to it) until it ends."""
    watched: list[Any] = [channel] + ([stdin] if stdin is not None else [])
    while True:
        readable, _, _ = select.select(watched, [], [], POLL_S)
        if channel in readable or channel.recv_ready() or channel.recv_stderr_ready():
            while channel.recv_ready():
                _write(stdout, channel.recv(READ_CHUNK))
            while channel.recv_stderr_ready():
                _write(stderr, channel.recv_stderr(READ_CHUNK))
        if stdin is not None and stdin in readable:
            data = os.read(stdin.fileno(), READ_CHUNK)
            if data:
                channel.sendall(data)
            else:
                watched.remove(stdin)
                channel.shutdown_write()
        if channel.exit_status_ready() and not channel.recv_ready() \
                and not channel.recv_stderr_ready() and (channel.eof_received or terminal):
            return
        if channel.closed and not channel.recv_ready():
            return


def _write(stream: IO[bytes], data: bytes) -> None:
    stream.write(data)
    stream.flush()


def _send(channel: paramiko.Channel, stdin: IO[bytes]) -> None:
    """stdin to the channel until its end, then EOF (a pipe; never a terminal)."""
    with contextlib.suppress(OSError, EOFError, ValueError):
        fd = stdin.fileno()
        while data := os.read(fd, READ_CHUNK):
            channel.sendall(data)
        channel.shutdown_write()


@contextlib.contextmanager
def _raw(stdin: IO[bytes]) -> Iterator[None]:
    """The local terminal in raw mode for the session; its settings restored after."""
    import termios  # lazy: POSIX only, and only for a terminal session
    import tty  # lazy: as termios

    fd = stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def _follow_window(channel: paramiko.Channel) -> Iterator[None]:
    """Resize the remote pty when the local window changes (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def resize(signum: int, frame: object) -> None:
        size = shutil.get_terminal_size()
        with contextlib.suppress(Exception):  # the session may be ending
            channel.resize_pty(width=size.columns, height=size.lines)

    previous = signal.signal(signal.SIGWINCH, resize)
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)
