"""One generation at a time behind a bounded queue: 429 when full, 503 past the queue
deadline, 504 past the run deadline, and requests whose client left are dropped. The server
holds each generation 5 s (FLUX_TEST_GENERATE_DELAY) with a queue of 1 and
FLUX_QUEUE_TIMEOUT = FLUX_RUN_TIMEOUT = 2.5."""

from __future__ import annotations

import threading

import httpx


def _post_many(url: str, count: int) -> list[httpx.Response]:
    results: list[httpx.Response] = [None] * count  # type: ignore[list-item]
    barrier = threading.Barrier(count)

    def post(index: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            barrier.wait()
            results[index] = client.post("/generate", json={"prompt": "queue", "seed": index})

    threads = [threading.Thread(target=post, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_queue_overflow_gets_429_with_retry_after(slow_server):
    responses = _post_many(slow_server.url, 6)
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(429) >= 1, statuses  # 1 running + 1 waiting fit; the rest do not
    assert set(statuses) <= {429, 503, 504}, statuses
    rejected = next(r for r in responses if r.status_code == 429)
    assert int(rejected.headers["Retry-After"]) >= 1
    assert rejected.headers["x-should-retry"] == "true"
    for late in (r for r in responses if r.status_code == 503):  # waited past the deadline
        assert late.json()["error"]["type"] == "QueueTimeout" and late.headers["Retry-After"]
    assert rejected.json()["error"]["type"] == "QueueFull"
    assert slow_server.client.get("/health").status_code == 200


def test_request_past_its_timeout_gets_504_and_frees_the_worker(slow_server):
    response = slow_server.client.post("/generate", json={"prompt": "late"})
    assert response.status_code == 504
    assert "FLUX_RUN_TIMEOUT" in response.json()["error"]["message"]
    assert response.headers["x-should-retry"] == "false"
    status = slow_server.wait_for(
        lambda: (s := slow_server.client.get("/model-status").json())["queue"]["running"] is False
        and s, what="worker idle")
    assert status["queue"]["depth"] == 0


def test_request_whose_client_left_while_queued_is_dropped(slow_server):
    before = slow_server.client.get("/model-status").json()["queue"]["dropped"]
    holder = threading.Thread(target=lambda: httpx.post(
        slow_server.url + "/generate", json={"prompt": "hold"}, timeout=30))
    holder.start()
    slow_server.wait_for(lambda: slow_server.client.get("/model-status").json()["queue"]
                         ["running"], what="a running generation")
    try:
        httpx.post(slow_server.url + "/generate", json={"prompt": "leaves"}, timeout=0.5)
    except httpx.ReadTimeout:
        pass
    holder.join()
    slow_server.wait_for(lambda: slow_server.client.get("/model-status").json()["queue"]
                         ["dropped"] > before, what="the queued request dropped")
    assert "dropped queued job: client disconnected" in slow_server.log_text()
