"""The idle clock behind a deployment's idle limit: `/ready`'s `activity` (issue 16)."""

from __future__ import annotations

import threading
import time

from fastapi.testclient import TestClient
from flux_server.activity import Activity
from flux_server.app import create_app
from flux_server.config import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_idle_counts_from_ready_then_from_the_end_of_the_last_request() -> None:
    clock = Clock()
    activity = Activity(clock)
    assert activity.snapshot(ready=False)["idle_s"] is None  # loading is not idle
    clock.now = 110.0
    assert activity.snapshot(ready=True)["idle_s"] == 0.0  # ready seen now: the clock starts
    clock.now = 130.0
    assert activity.snapshot(ready=True)["idle_s"] == 20.0
    with activity.request():
        clock.now = 200.0
        busy = activity.snapshot(ready=True)
        assert busy["in_flight"] == 1 and busy["idle_s"] == 0.0  # in progress: never idle
    clock.now = 205.0
    after = activity.snapshot(ready=True)
    assert after == {"in_flight": 0, "requests": 1, "idle_s": 5.0}


def test_a_failed_request_still_ends_the_idle_time() -> None:
    clock = Clock()
    activity = Activity(clock)
    activity.snapshot(ready=True)
    clock.now = 150.0
    try:
        with activity.request():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    clock.now = 151.0
    assert activity.snapshot(ready=True)["idle_s"] == 1.0


class SlowPipeline:
    """A stand-in pipeline that waits until released, like a long generation."""

    vae_scale_factor = 1

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, **kwargs):
        self.release.wait(30)
        raise RuntimeError("released")


def test_ready_shows_a_request_in_flight_as_not_idle() -> None:
    app = create_app(Settings(model="tiny"))
    service = app.state.service
    client = TestClient(app)
    before = client.get("/ready").json()
    assert before["activity"] == {"in_flight": 0, "requests": 0, "idle_s": None}
    for state in ("loading", "warming", "ready"):
        service.state.advance(state)
    pipe = SlowPipeline()
    service.loader.pipeline = pipe
    assert client.get("/ready").json()["activity"]["idle_s"] == 0.0
    time.sleep(0.2)
    assert client.get("/ready").json()["activity"]["idle_s"] >= 0.2
    worker = threading.Thread(target=client.post, args=("/generate",),
                              kwargs={"json": {"prompt": "x", "seed": 1}})
    worker.start()
    deadline = time.monotonic() + 10
    while client.get("/ready").json()["activity"]["in_flight"] != 1:
        assert time.monotonic() < deadline, "the request never showed as in flight"
        time.sleep(0.05)
    assert client.get("/ready").json()["activity"]["idle_s"] == 0.0
    pipe.release.set()
    worker.join(30)
    done = client.get("/ready").json()["activity"]
    assert done["in_flight"] == 0 and done["requests"] == 1 and done["idle_s"] < 5
