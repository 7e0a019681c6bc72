"""Closing long-running commands on SIGINT and SIGTERM, whatever the process inherited.

A background job of a script, or some CI, starts us with SIGINT ignored (SIG_IGN), and Python
then leaves it ignored; SIGTERM by default kills the process without running a `finally`.
Inside `interruptible()` both signals raise `Interrupted` in the main thread instead, so the
usual `with` / `finally` blocks close tunnels and connections and the state stays saved; the
CLI's `main()` turns it into exit code 130 (SIGINT) or 143 (SIGTERM)::

    from intelligensi_deploy.signals import interruptible

    with interruptible(), host.forward(port) as local_port:   # interruptible() outermost
        print(f"open on {local_port}")
        wait_forever()
    # Interrupted propagates after host.forward closed; main() exits 130 or 143

A second signal while the first one's cleanup runs ends the process at once (exit code of that
signal), so a hung cleanup never makes the user wait.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived inside `interruptible()`; `exit_code` is 128 + the signal.

    A BaseException (like KeyboardInterrupt and SystemExit), so `except Exception` never
    swallows it; not a KeyboardInterrupt, so typer does not turn it into its own exit 130
    before `main()` can tell SIGTERM (143) from SIGINT (130).
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(self.signal_name)


def find_interrupted(exc: BaseException) -> Interrupted | None:
    """The `Interrupted` behind `exc` (itself, its cause or its context), if any.

    Looks through the chain, in case a library re-raised it wrapped in its own exception.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, Interrupted):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def exit_code_for(exc: BaseException) -> int:
    """130 for SIGINT (or a plain KeyboardInterrupt), 143 for SIGTERM: 128 + the signal."""
    found = find_interrupted(exc)
    return found.exit_code if found else 128 + signal.SIGINT


@contextmanager
def interruptible(signals: tuple[int, ...] = HANDLED) -> Iterator[None]:
    """Within the block, `signals` raise `Interrupted` in the main thread; the handlers the
    process had before (SIG_IGN included) come back when the block ends.

    Must be entered from the main thread (only it may set signal handlers): elsewhere it
    raises RuntimeError. Nested blocks are fine; the innermost handler is the one in force.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("interruptible() must be used in the main thread")
    fired: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if fired:  # a second signal during the cleanup of the first: stop now
            os._exit(128 + signum)
        fired.append(signum)
        raise Interrupted(signum)

    previous: dict[int, Any] = {}
    try:
        for signum in signals:
            previous[signum] = signal.signal(signum, handler)
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)


def wait_forever(poll_s: float = 3600.0) -> None:
    """Sleep until a signal handler raises (inside `interruptible()`: until SIGINT/SIGTERM)."""
    while True:
        time.sleep(poll_s)
