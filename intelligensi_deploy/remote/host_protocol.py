"""What every host shares: the `Host` protocol, `RunResult`, and the output handling the
runners (`local_host.LocalHost`, `ssh_host.SSHHost`) have in common.

A command is always an argv list. Secrets never go into argv: they travel on stdin or through
`Host.write_file` (which sends the data on stdin).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import IO, Protocol

from intelligensi_deploy.errors import FluxdeployError

OutputCallback = Callable[[str], None]
# What `run` sends on stdin: bytes, or a binary file read to its end in chunks (a build
# context can be hundreds of MB: it is streamed, never held in memory whole).
Stdin = bytes | IO[bytes] | None

READ_CHUNK = 32768
POLL_S = 0.2


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


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class LineSplitter:
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
            self._on_line(decode(line).rstrip("\r"))

    def finish(self) -> str:
        if self._on_line is not None and self._pending:
            self._on_line(decode(self._pending).rstrip("\r"))
        self._pending = b""
        return decode(b"".join(self._chunks))


def write_file_script(path: str, mode: int) -> list[str]:
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


def timed_out(label: str, argv: Sequence[str], timeout: float | None) -> CommandTimeout:
    return CommandTimeout(
        f"`{shlex.join(argv)}` on {label} ran longer than {timeout:g} s and was stopped.",
        fix="Run it again with more time, or look at the host to see why it is slow.",
    )


def stdin_chunks(data: Stdin) -> Iterator[bytes]:
    """`data` in pieces: bytes as one piece, a file read to its end (1 MiB at a time)."""
    if data is None:
        return
    if isinstance(data, (bytes, bytearray, memoryview)):
        if data:
            yield bytes(data)
        return
    yield from iter(lambda: data.read(1 << 20), b"")
