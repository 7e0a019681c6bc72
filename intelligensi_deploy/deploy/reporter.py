"""What `up` and `down` tell the user: the Reporter protocol (the CLI renders it with rich,
tests record it), and a Reporter for one node of a cluster."""

from __future__ import annotations

from typing import Protocol

from intelligensi_deploy.health import ReadyStatus


class Reporter(Protocol):
    """What `up`/`down` tell the user; console.ConsoleReporter renders it."""

    def step(self, message: str) -> None: ...
    def detail(self, line: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def ready_status(self, status: ReadyStatus, elapsed: float) -> None: ...
    def progress_line(self, line: str) -> None: ...
        # a line of a long command's raw output (build): transient on a TTY, else dropped


class NodeReporter:
    """A Reporter whose lines say which node they are about (images run on all at once)."""

    def __init__(self, ui: Reporter, index: int) -> None:
        self.ui, self.index, self.prefix = ui, index, f"Node {index}: "

    def step(self, message: str) -> None:
        self.ui.step(self.prefix + message)

    def detail(self, line: str) -> None:
        self.ui.detail(f"node {self.index}: {line}")

    def warn(self, message: str) -> None:
        self.ui.warn(self.prefix + message)

    def ready_status(self, status: ReadyStatus, elapsed: float) -> None:
        self.ui.ready_status(status, elapsed)

    def progress_line(self, line: str) -> None:
        self.ui.progress_line(self.prefix + line)
