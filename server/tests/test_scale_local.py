"""Two replicas on one node (a Ray the server starts itself, as on an 8-GPU VM) share the
node's Hugging Face cache: the model is downloaded from the (fake) hub once, not twice. With
API keys on (FLUX_API_KEYS_FILE), the Ray Serve path answers the same 401s as one process."""

from __future__ import annotations

from collections import Counter

import pytest

pytest.importorskip("ray", reason="needs the server's `scale` extra (ray[serve])")

API_KEY = "scale-key-0123456789abcdef"


def test_replicas_on_one_node_download_the_model_once(start_server, fake_hub, hub_names,
                                                     tmp_path):
    before = len(fake_hub.requests)
    keys_file = tmp_path / "api-keys"
    keys_file.write_text(f"{API_KEY}\n")
    server = start_server("scale-shared-cache", FLUX_MODEL=hub_names["open_repo"],
                          HF_ENDPOINT=fake_hub.url, FLUX_REPLICAS="2",
                          FLUX_REPLICA_RESOURCE="fakegpu", FLUX_REPLICA_CPUS="0",
                          FLUX_API_KEYS_FILE=str(keys_file))
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
        body = {"prompt": "a fox", "width": 64, "height": 64}
        for headers in ({}, {"Authorization": "Bearer wrong-key-0123456789abcdef"}):
            refused = server.client.post("/generate", json=body, headers=headers)
            assert refused.status_code == 401 and refused.json()["error"]["type"] == \
                "Unauthorized"
            assert server.client.get("/model-status", headers=headers).status_code == 401
        assert server.client.get("/ready").json()["model"] == "hidden"
        response = server.client.post("/generate", json=body,
                                       headers={"Authorization": f"Bearer {API_KEY}"})
        assert response.status_code == 200
        assert API_KEY not in server.log_text()
    finally:
        server.stop()
