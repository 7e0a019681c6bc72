"""The server under Ray Serve on a real 3-node Ray cluster (ray.cluster_utils.Cluster): a head
and two workers on this machine, each worker given a custom `fakegpu` resource where a GPU
would be (2 on one, 1 on the other) so that replica placement is real. The same HTTP tests
run against the plain one-replica process and against the cluster endpoint."""

from __future__ import annotations

import base64
import io
import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

ray = pytest.importorskip("ray", reason="needs the server's `scale` extra (ray[serve])")

# Serve pushes autoscaling metrics every 10 s by default: faster here, so the test is short.
FAST_METRICS = {"RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "1",
                "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "1"}
SHARED = {"FLUX_MODEL": "tiny", "FLUX_TEST_GENERATE_DELAY": "0.4"}
QUEUED = 2  # waiting generations at most, on both servers


@pytest.fixture(scope="module")
def ray_cluster():
    from ray.cluster_utils import Cluster

    saved = {k: os.environ.get(k) for k in FAST_METRICS}
    os.environ.update(FAST_METRICS)  # inherited by the nodes' processes
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1, resources={"fakegpu": 2}),
               cluster.add_node(num_cpus=1, resources={"fakegpu": 1})]
    cluster.wait_for_nodes()
    cluster.workers = workers
    yield cluster
    cluster.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def scale_servers(start_server, ray_cluster):
    """A plain one-replica server and a cluster endpoint (autoscaling 2..3 replicas), with the
    same generation delay and the same bound on waiting generations."""
    plain = start_server("scale-plain", FLUX_QUEUE_SIZE=str(QUEUED), **SHARED)
    cluster = start_server(
        "scale-cluster", FLUX_MIN_REPLICAS="2", FLUX_MAX_REPLICAS="3", FLUX_MIN_READY="2",
        FLUX_TARGET_ONGOING_REQUESTS="1", FLUX_MAX_QUEUED_REQUESTS=str(QUEUED),
        FLUX_REPLICA_RESOURCE="fakegpu", FLUX_REPLICA_CPUS="0",
        FLUX_RAY_ADDRESS=ray_cluster.address, **FAST_METRICS, **SHARED)
    plain.wait_state("ready", "failed")
    cluster.wait_for(lambda: cluster.client.get("/ready").status_code == 200, timeout=240,
                     what="cluster /ready 200")
    yield {"plain": plain, "cluster": cluster, "ray_cluster": ray_cluster}
    cluster.stop()  # before the Ray cluster goes away


@pytest.fixture(params=["plain", "cluster"])
def server(request, scale_servers):
    return scale_servers[request.param]


def _cluster(server) -> dict:
    return server.client.get("/ready").json()["cluster"]


def test_cluster_ready_shows_each_replica_placed_on_the_fakegpu_workers(scale_servers):
    worker_ids = {w.node_id for w in scale_servers["ray_cluster"].workers}
    response = scale_servers["cluster"].client.get("/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ready"] is True and body["state"] == "ready"
    cluster = body["cluster"]
    assert cluster["ready"] == f"{cluster['ready_replicas']}/{cluster['expected_replicas']}"
    assert cluster["ready_replicas"] >= 2 and cluster["min_ready"] == 2
    rows = cluster["replicas"]
    assert all(r["state"] == "ready" and r["progress"]["components_done"] == 7 for r in rows)
    assert {r["node_id"] for r in rows} <= worker_ids  # placed by the fakegpu resource


def test_same_api_png_of_the_requested_size(server):
    response = server.client.post("/generate", json={"prompt": "a red fox", "width": 96,
                                                     "height": 64, "seed": 7})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["X-Seed"] == "7"
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (96, 64)


def test_same_api_same_seed_gives_the_same_image_on_any_replica(scale_servers):
    def png(server):
        return server.client.post("/generate", json={"prompt": "a fox", "seed": 11,
                                                     "width": 64, "height": 64}).content
    plain = png(scale_servers["plain"])
    assert {png(scale_servers["cluster"]) for _ in range(3)} == {plain}


def test_same_api_422_names_the_field(server):
    response = server.client.post("/generate", json={"prompt": "x", "width": 100})
    assert response.status_code == 422
    assert "width" in response.json()["error"]["message"]


def test_same_api_work_budget_error_shapes_and_should_retry(server):
    """Issue 21 on both paths: the budget 422, x-should-retry, 404/413 in one shape."""
    assert server.client.get("/ready").json()["limits"]["max_work"] == 40  # tiny's
    huge = server.client.post("/generate", json={
        "prompt": "x", "width": 2048, "height": 2048, "num_inference_steps": 100,
        "num_images": 4, "response_format": "b64_json"})
    assert huge.status_code == 422 and "FLUX_MAX_WORK=40" in huge.text
    assert huge.headers["x-should-retry"] == "false"
    missing = server.client.get("/no-such-route")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFound"
    big = server.client.post("/generate", content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                             headers={"content-type": "application/json"})
    assert big.status_code == 413 and big.json()["error"]["type"] == "BodyTooLarge"
    refused = server.client.post("/generate", json={"prompt": "x", "negative_prompt": "fog"})
    assert refused.status_code == 422 and "true_cfg_scale" in refused.text


def test_same_api_openai_route(server):
    response = server.client.post("/v1/images/generations", json={
        "prompt": "a fox", "n": 2, "size": "64x64", "response_format": "b64_json"})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert len(data) == 2
    assert Image.open(io.BytesIO(base64.b64decode(data[0]["b64_json"]))).size == (64, 64)


def test_same_api_metrics(server):
    server.client.post("/generate", json={"prompt": "a fox", "width": 64, "height": 64})
    text = server.client.get("/metrics").text
    assert 'flux_request_duration_seconds_count{route="/generate",status="200"}' in text
    assert "flux_images_generated_total" in text and "flux_ready 1.0" in text


def _burst(server, clients: int) -> list[httpx.Response]:
    def one(_):
        with httpx.Client(base_url=server.url, timeout=60) as client:
            return client.post("/generate", json={"prompt": "load", "width": 64,
                                                  "height": 64})
    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, range(clients)))


def test_same_api_backpressure_is_429_with_retry_after_never_5xx(server):
    responses = _burst(server, 16)
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 429}, codes
    assert 200 in codes and 429 in codes, codes
    refused = next(r for r in responses if r.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"]["type"] == "QueueFull"


def test_lora_with_replicas_is_refused_clearly(scale_servers):
    response = scale_servers["cluster"].client.post("/apply-lora", json={
        "source": "some/lora", "weight": 1.0})
    assert response.status_code == 501
    assert "one replica" in response.json()["error"]["hint"]


def test_autoscaling_reaches_3_of_3_under_load(scale_servers):
    cluster = scale_servers["cluster"]
    deadline = time.monotonic() + 120
    seen = []
    with ThreadPoolExecutor(4) as pool:
        while time.monotonic() < deadline:
            codes = {r.status_code for r in pool.map(lambda _: cluster.client.post(
                "/generate", json={"prompt": "load", "width": 64, "height": 64}), range(4))}
            assert codes <= {200, 429}, codes
            view = _cluster(cluster)
            seen.append(view["ready"])
            if view["ready"] == "3/3":
                break
    assert seen[-1] == "3/3", seen


def test_losing_a_worker_node_keeps_serving_and_ready_shows_it(scale_servers, ray_cluster):
    cluster = scale_servers["cluster"]
    lonely = ray_cluster.workers[1]  # fakegpu 1: exactly one replica lives there
    ray_cluster.remove_node(lonely, allow_graceful=False)
    codes = [cluster.client.post("/generate", json={"prompt": "after loss", "width": 64,
                                                    "height": 64}).status_code
             for _ in range(6)]
    assert codes.count(200) >= 5, codes  # at most the request caught on the lost replica

    def lost():
        body = cluster.client.get("/ready").json()["cluster"]
        return body if body["ready"] == "2/3" and any(
            r["state"] == "lost" for r in body["replicas"]) else None
    view = cluster.wait_for(lost, timeout=60, what="ready 2/3 with a lost replica")
    assert cluster.client.get("/ready").status_code == 200  # 2 >= min_ready
    assert [r["node_id"] for r in view["replicas"] if r["state"] == "lost"] == [
        lonely.node_id]
    ray_cluster.workers[1] = ray_cluster.add_node(num_cpus=1, resources={"fakegpu": 1})
    cluster.wait_for(lambda: _cluster(cluster)["ready"] == "3/3", timeout=180,
                     what="back to 3/3")
