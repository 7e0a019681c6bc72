"""Terminal output: every line redacted, progress that fits a TTY or a log file."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.text import Text

from intelligensi_deploy.health import ReadyStatus
from intelligensi_deploy.redact import redact


def _console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


class ConsoleReporter:
    """Renders the steps of `up` and `down`; implements deploy.Reporter."""

    def __init__(self, quiet: bool = False) -> None:
        self.console = _console()
        self.quiet = quiet
        self._status: Any = None
        self._last_state: str | None = None
        self._last_print = 0.0

    def _print(self, text: str, style: str | None = None) -> None:
        self.console.print(Text(redact(text), style=style or ""))

    def _stop_status(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def close(self) -> None:
        """Stop the live progress line (after an interruption), leaving the terminal clean."""
        self._stop_status()

    def step(self, message: str) -> None:
        self._stop_status()
        self._print(f"→ {message}", "bold")

    def detail(self, line: str) -> None:
        if not self.quiet and line.strip():
            self._print(f"  {line.rstrip()}", "dim")

    def warn(self, message: str) -> None:
        self._stop_status()
        self._print(f"! {message}", "yellow")

    def progress_line(self, line: str) -> None:
        """Raw output of a long command (a build's pip lines): the latest one, transient, on a
        TTY; dropped in logs (the steps and layers are printed as details)."""
        if self.quiet or not self.console.is_terminal or not line.strip():
            return
        text = redact(line.strip())[: max(20, self.console.width - 4)]
        if self._status is None:
            self._status = self.console.status(text)
            self._status.start()
        else:
            self._status.update(text)

    def ready_status(self, status: ReadyStatus, elapsed: float) -> None:
        text = f"{status.describe()}  ({elapsed:.0f} s)"
        if self.console.is_terminal:
            if self._status is None:
                self._status = self.console.status(redact(text))
                self._status.start()
            else:
                self._status.update(redact(text))
            if status.ready or status.failed:
                self._stop_status()
                self._print(f"  {text}", "green" if status.ready else "red")
            return
        now = time.monotonic()
        if status.state != self._last_state or now - self._last_print > 30:
            self._print(f"  {text}", "dim")
            self._last_state, self._last_print = status.state, now


def print_error(message: str) -> None:
    """A red line on stderr, redacted."""
    _console(stderr=True).print(Text(redact(message), style="red"))

