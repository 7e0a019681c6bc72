"""Two replicas on one node (a Ray the server starts itself, as on an 8-GPU VM) share the
node's Hugging Face cache: the model is downloaded from the (fake) hub once, not twice."""

from __future__ import annotations

from collections import Counter

import pytest

pytest.importorskip("ray", reason="needs the server's `scale` extra (ray[serve])")


def test_replicas_on_one_node_download_the_model_once(start_server, fake_hub, hub_names):
    before = len(fake_hub.requests)
    server = start_server("scale-shared-cache", FLUX_MODEL=hub_names["open_repo"],
                          HF_ENDPOINT=fake_hub.url, FLUX_REPLICAS="2",
                          FLUX_REPLICA_RESOURCE="fakegpu", FLUX_REPLICA_CPUS="0")
    try:
        server.wait_for(lambda: server.client.get("/ready").status_code == 200, timeout=240,
                        what="2 replicas ready")
        cluster = server.client.get("/ready").json()["cluster"]
        assert cluster["ready"] == "2/2"
        assert len({r["node_id"] for r in cluster["replicas"]}) == 1  # one node
        files = Counter(r.path for r in fake_hub.requests[before:]
                        if r.method == "GET" and "/resolve/" in r.path and r.status in (200, 206))
        assert files, "the model was not downloaded at all"
        assert max(files.values()) == 1, files  # each file once: the cache is shared
        response = server.client.post("/generate", json={"prompt": "a fox", "width": 64,
                                                         "height": 64})
        assert response.status_code == 200
    finally:
        server.stop()
