"""When the server last worked on a generation: the idle clock of the watchdog that enforces
a deployment's idle limit (server/flux_server/watchdog.py reads it from `/ready`).

Idle time is counted from the later of: the end of the last generation request, and the
first moment `/ready` was seen ready (the watchdog asks every few seconds, so that moment is
at most one of its intervals late: the idle time is never overstated). While a generation
request is in progress the server is not idle.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Activity:
    """Generation requests in flight and the time the last one ended. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight = 0
        self._last_end: float | None = None
        self._ready_at: float | None = None
        self._requests = 0

    @contextmanager
    def request(self) -> Iterator[None]:
        """Wrap one generation request (whatever its outcome)."""
        with self._lock:
            self._in_flight += 1
            self._requests += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                self._last_end = self._clock()

    def snapshot(self, ready: bool) -> dict[str, float | int | None]:
        """`{in_flight, requests, idle_s}` for `/ready`; `idle_s` is None until ready."""
        with self._lock:
            now = self._clock()
            if ready and self._ready_at is None:
                self._ready_at = now
            if self._ready_at is None:
                idle = None
            elif self._in_flight:
                idle = 0.0
            else:
                idle = now - max(self._ready_at, self._last_end or self._ready_at)
            return {"in_flight": self._in_flight, "requests": self._requests,
                    "idle_s": None if idle is None else round(idle, 3)}
