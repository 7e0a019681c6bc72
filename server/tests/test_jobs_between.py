"""A LoRA swap gets the pipeline between two generations, even under a steady stream of them:
`JobQueue.between_jobs` lets at most the running job (and one the worker had already taken)
finish first. Counted in jobs, not seconds."""

from __future__ import annotations

import threading
import time

from flux_server.jobs import JobQueue


def _busy(_job) -> int:
    started = time.monotonic()
    while time.monotonic() - started < 0.03:  # holds the GIL, as Python-heavy work does
        pass
    return 1


def test_the_swap_waits_for_at_most_the_job_in_hand_under_a_steady_stream():
    queue = JobQueue(100)
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            if queue.depth < 5:
                queue.submit(_busy)
            time.sleep(0.002)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        while queue.completed < 3:
            time.sleep(0.01)
        overtaken = []
        for _ in range(8):
            before = queue.completed
            with queue.between_jobs():
                overtaken.append(queue.completed - before)
                assert queue.running is None  # nothing generates during the swap
            time.sleep(0.02)
        assert max(overtaken) <= 2, overtaken
    finally:
        stop.set()
        feeder.join()
        queue.close(wait_s=5)
