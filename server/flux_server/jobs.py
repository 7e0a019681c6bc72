"""One generation at a time: a bounded FIFO queue in front of a single worker thread.

A job whose request went away while waiting is dropped at once; a job cancelled while
running is stopped at the next denoising step (see engine.generate).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flux_server.cost import CostModel

log = logging.getLogger("flux_server.jobs")


class QueueFull(Exception):
    """The queue already holds its maximum of waiting jobs."""


class JobDropped(Exception):
    """The job was cancelled before it started and was never run."""


@dataclass
class Job:
    work: Callable[[Job], Any]
    future: Future = field(default_factory=Future)
    enqueued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    finished_at: float | None = None
    cancel_reason: str | None = None
    steps_done: int = 0  # denoising steps finished so far (set by the worker)
    steps_total: int = 0
    cost: float = 0.0  # megapixel-steps (cost.py), for the wait estimate
    cancelled_at_step: int | None = None  # steps_done when cancel() was called
    _on_cancel: Callable[[Job], None] | None = field(default=None, repr=False)

    def cancel(self, reason: str) -> None:
        """Stop this job: dropped if still waiting, interrupted at its next step if running."""
        if self.cancel_reason is None:
            self.cancelled_at_step = self.steps_done
            self.cancel_reason = reason
            if self._on_cancel is not None:
                self._on_cancel(self)

    def progress(self, steps_done: int, steps_total: int) -> None:
        """Called by the worker after each denoising step."""
        self.steps_done, self.steps_total = steps_done, steps_total

    @property
    def cancelled(self) -> bool:
        return self.cancel_reason is not None

    @property
    def queue_wait_s(self) -> float:
        end = self.started_at if self.started_at is not None else time.monotonic()
        return end - self.enqueued_at

    @property
    def run_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


class JobQueue:
    """Bounded FIFO with one worker; `lock` is held while a job runs (shared with LoRA ops).

    A waiting job that is cancelled leaves the queue at once (its place is freed)."""

    def __init__(self, max_waiting: int, lock: threading.Lock | None = None,
                 on_change: Callable[[int], None] | None = None) -> None:
        self.max_waiting = max_waiting
        self.lock = lock or threading.Lock()
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.holding = False  # set on shutdown: no new job starts (one assignment)
        self._pauses = 0  # callers of between_jobs() waiting for or holding the pipeline
        self._on_change = on_change or (lambda depth: None)
        self.running: Job | None = None
        self.dropped = 0
        self.completed = 0
        self.cost = CostModel()
        self._thread = threading.Thread(target=self._work, name="generation-worker", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Jobs waiting (not counting the one running)."""
        return len(self._waiting)

    def submit(self, work: Callable[[Job], Any], cost: float = 0.0) -> Job:
        """Enqueue `work(job)` of `cost` megapixel-steps; raise QueueFull when `max_waiting`
        jobs already wait."""
        job = Job(work, cost=cost)
        job._on_cancel = self._drop
        with self._cond:
            if len(self._waiting) >= self.max_waiting:
                raise QueueFull(f"{self.max_waiting} generations already waiting")
            self._waiting.append(job)
            self._cond.notify()
        self._on_change(self.depth)
        return job

    @contextmanager
    def between_jobs(self) -> Iterator[None]:
        """Hold the pipeline between two jobs (a LoRA swap): the running job finishes, no
        new one starts until the block ends. Fair: `lock` alone could be taken back by the
        worker job after job."""
        with self._cond:
            self._pauses += 1
        try:
            with self.lock:
                yield
        finally:
            with self._cond:
                self._pauses -= 1
                self._cond.notify_all()

    def estimated_wait_s(self) -> float:
        """How long a new job would wait (for Retry-After): the work queued, each job's
        seconds estimated from its size and steps (cost.CostModel), plus what is left of
        the running one."""
        with self._cond:
            waiting = [job.cost for job in self._waiting]
            running = self.running
        wait = sum(self.cost.estimate(cost) for cost in waiting)
        if running is not None:
            started = running.started_at or time.monotonic()
            left: float = self.cost.estimate(running.cost) - (time.monotonic() - started)
            if running.steps_done and running.steps_total:  # its own pace so far
                per_step = (time.monotonic() - started) / running.steps_done
                left = per_step * (running.steps_total - running.steps_done)
            wait += max(0.0, left)
        return wait

    def close(self, reason: str = "shutdown", wait_s: float = 0.0) -> bool:
        """Stop: drop the waiting jobs, cancel the running one (it stops at its next step)
        and wait up to `wait_s` for the worker to finish. True when the worker has ended."""
        with self._cond:
            self._closed = True
            waiting = list(self._waiting)
            running = self.running
            self._cond.notify()
        for job in waiting:
            job.cancel(reason)
        if running is not None:
            running.cancel(reason)
        self._thread.join(wait_s)
        return not self._thread.is_alive()

    def _drop(self, job: Job) -> None:
        with self._cond:
            if job not in self._waiting:
                return  # running or done: the job itself stops at its next check
            self._waiting.remove(job)
            self.dropped += 1
        log.info("dropped queued job: %s", job.cancel_reason)
        job.future.set_exception(JobDropped(job.cancel_reason))
        self._on_change(self.depth)

    def _work(self) -> None:
        while True:
            with self._cond:
                while (not self._waiting or self.holding or self._pauses) and not self._closed:
                    self._cond.wait(0.25 if self.holding else None)
                if self._closed:
                    return
                job = self._waiting.popleft()
                self.running = job
            self._on_change(self.depth)
            if not job.future.set_running_or_notify_cancel():
                self.running = None
                continue
            with self.lock:
                job.started_at = time.monotonic()
                try:
                    result = job.work(job)
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting request
                    job.finished_at = time.monotonic()
                    job.future.set_exception(exc)
                else:
                    job.finished_at = time.monotonic()
                    job.future.set_result(result)
                    self.cost.record(job.cost, job.run_s or 0.0)
                finally:
                    self.running = None
                    self.completed += 1
