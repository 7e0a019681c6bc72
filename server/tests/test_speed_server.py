"""Warm shapes through the app in-process with the tiny pipeline: `warming i/n sizes`
progress, /ready only after the last size, the speed plan and its reasons in /model-status,
and `cold_shape` in the request log line."""

from __future__ import annotations

import logging
import time

from fastapi.testclient import TestClient
from flux_server.app import create_app
from flux_server.config import Settings
from flux_server.speed import SpeedRequest

WARM = ((64, 64), (80, 64))


def test_warm_sizes_gate_ready_and_mark_cold_shapes(caplog):
    caplog.set_level(logging.INFO)
    settings = Settings(model="tiny", speed=SpeedRequest(fuse_qkv="on", warm_sizes=WARM))
    app = create_app(settings, detect_gpus=list)
    service = app.state.service
    seen = []
    warm = service.loader._warm_up

    def watching_warm(pipe, defaults, size):
        snap = service.state.snapshot()
        seen.append((size, snap["state"], snap["ready"], snap["progress"]["warm_sizes_done"]))
        warm(pipe, defaults, size)

    service.loader._warm_up = watching_warm
    with TestClient(app) as client:
        deadline = time.monotonic() + 120
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, client.get("/ready").json()
            time.sleep(0.05)
        assert seen == [((64, 64), "warming", False, 0), ((80, 64), "warming", False, 1)]
        assert client.get("/ready").json()["progress"]["warm_sizes_done"] == 2
        assert "warming 1/2 sizes: 64x64" in caplog.text
        assert "warming 2/2 sizes: 80x64" in caplog.text

        speed = client.get("/model-status").json()["speed"]
        assert speed["fuse_qkv"] is True and speed["compile"] == "off"
        assert "fused QKV on as requested" in speed["reasons"]
        assert speed["warm_sizes"] == ["64x64", "80x64"]

        caplog.clear()
        warm_reply = client.post("/generate", json={"prompt": "a cat", "width": 80,
                                                    "height": 64, "seed": 1})
        cold_reply = client.post("/generate", json={"prompt": "a cat", "width": 96,
                                                    "height": 64, "seed": 1})
        again = client.post("/generate", json={"prompt": "a cat", "width": 96, "height": 64,
                                               "seed": 1})
        assert [r.status_code for r in (warm_reply, cold_reply, again)] == [200, 200, 200]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("request ")
             and "route=/generate" in r.getMessage()]
    assert len(lines) == 3
    assert "cold_shape=false" in lines[0]
    assert "cold_shape=true" in lines[1]
    assert "cold_shape=false" in lines[2]  # run once, it is warm now
