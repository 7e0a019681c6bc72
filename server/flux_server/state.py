"""The load state machine behind /ready: starting -> downloading -> loading -> warming ->
ready, or failed (terminal) from any of them. Thread-safe; the clock is injectable."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

STATES = ("starting", "downloading", "loading", "warming", "ready", "failed")
_NEXT = {
    "starting": {"downloading", "loading", "failed"},
    "downloading": {"loading", "failed"},
    "loading": {"warming", "failed"},
    "warming": {"ready", "failed", "loading"},  # loading again: OOM fallback
    "ready": set(),
    "failed": set(),
}


@dataclass(frozen=True)
class Failure:
    """Why loading failed: exception type, message (secrets removed) and a hint."""

    type: str
    message: str
    hint: str

    def as_dict(self) -> dict:
        return {"type": self.type, "message": self.message, "hint": self.hint}


class TransitionError(RuntimeError):
    """A state change the machine does not allow (a bug, never user input)."""


class LoadState:
    """Current state, per-phase timings, progress and failure, readable at any time."""

    def __init__(self, model: str, tiny: bool, clock: Callable[[], float] = time.monotonic):
        self.model = model
        self.tiny = tiny
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._state = "starting"
        self._phase_started = self._started
        self._phases: dict[str, float] = {}
        self._progress: dict[str, int] = {}
        self._failure: Failure | None = None

    @property
    def state(self) -> str:
        return self._state

    @property
    def ready(self) -> bool:
        return self._state == "ready"

    @property
    def failure(self) -> Failure | None:
        return self._failure

    def advance(self, new: str) -> None:
        """Enter state `new`, closing the timing of the current phase."""
        with self._lock:
            if new not in _NEXT[self._state]:
                raise TransitionError(f"{self._state} -> {new} is not allowed")
            now = self._clock()
            self._phases[self._state] = self._phases.get(self._state, 0.0) + (
                now - self._phase_started)
            self._state, self._phase_started = new, now

    def fail(self, failure: Failure) -> None:
        """Enter the terminal `failed` state with its reason (ignored once ready/failed)."""
        with self._lock:
            if self._state in ("ready", "failed"):
                return
        self._failure = failure
        self.advance("failed")

    def set_progress(self, **values: int | None) -> None:
        """Record progress counters (bytes_done, bytes_total, components_done, ...); a None
        (not known yet) leaves the counter as it was."""
        with self._lock:
            self._progress.update({k: int(v) for k, v in values.items() if v is not None})

    def snapshot(self) -> dict:
        """The /ready body (docs/contract.md)."""
        with self._lock:
            now = self._clock()
            phases = dict(self._phases)
            if self._state not in ("ready", "failed"):
                phases[self._state] = phases.get(self._state, 0.0) + now - self._phase_started
            return {
                "state": self._state,
                "ready": self._state == "ready",
                "model": self.model,
                "tiny": self.tiny,
                "elapsed_s": round(now - self._started, 3),
                "phase_elapsed_s": {k: round(v, 3) for k, v in phases.items()},
                "progress": dict(self._progress),
                "error": self._failure.as_dict() if self._failure else None,
            }
