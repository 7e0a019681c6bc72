"""`LocalHost`: this machine as a `Host`; commands run with subprocess, files are written
directly, and `forward` has nothing to do."""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from intelligensi_deploy.remote.host_protocol import (
    POLL_S,
    READ_CHUNK,
    LineSplitter,
    OutputCallback,
    RunResult,
    Stdin,
    stdin_chunks,
    timed_out,
)


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
        out, err = LineSplitter(on_output), LineSplitter(on_output)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            _read_until_eof({proc.stdout: out, proc.stderr: err}, deadline)
            returncode = proc.wait(
                None if deadline is None else max(0, deadline - time.monotonic())
            )
        except subprocess.TimeoutExpired:
            raise timed_out(self.label, argv, timeout) from None
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


def _read_until_eof(streams: dict[Any, LineSplitter], deadline: float | None) -> None:
    """Feed each pipe's bytes to its splitter until all are at EOF (TimeoutExpired at deadline)."""
    with selectors.DefaultSelector() as selector:
        for pipe in streams:
            selector.register(pipe, selectors.EVENT_READ)
        while selector.get_map():
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("", 0)
            for key, _ in selector.select(POLL_S):
                chunk = os.read(key.fd, READ_CHUNK)
                if chunk:
                    streams[key.fileobj].feed(chunk)
                else:
                    selector.unregister(key.fileobj)


def _feed_stdin(proc: subprocess.Popen[bytes], data: Stdin) -> None:
    assert proc.stdin is not None
    try:
        for chunk in stdin_chunks(data):
            proc.stdin.write(chunk)
    except BrokenPipeError:
        pass
    finally:
        with contextlib.suppress(BrokenPipeError, OSError):
            proc.stdin.close()
