"""A work budget, separate queue and run deadlines, x-should-retry as the real `openai` SDK
reads it, an honest Retry-After, a terminal failure that says so, and a SIGTERM that lets
the running generation finish and answers the queued ones at once. Real servers (tiny
model, CPU); FLUX_TEST_GENERATE_DELAY stands in for slow steps."""

from __future__ import annotations

import math
import signal
import threading
import time

import httpx
import pytest

SMALL = {"prompt": "a fox", "width": 64, "height": 64, "num_inference_steps": 2}


def _post(url: str, body: dict, out: list, request_id: str, timeout: float = 60) -> None:
    response = httpx.post(url + "/generate", json=body, timeout=timeout,
                          headers={"X-Request-Id": request_id})
    out.append((request_id, time.monotonic(), response))


def test_a_request_over_the_work_budget_is_422_naming_both(ready_server):
    assert ready_server.client.get("/ready").json()["limits"]["max_work"] == 40  # tiny's
    response = ready_server.client.post("/generate", json={
        "prompt": "huge", "width": 2048, "height": 2048, "num_inference_steps": 100,
        "num_images": 4, "response_format": "b64_json"})
    assert response.status_code == 422
    rule = response.json()["detail"][0]["rule"]
    assert "1677.7 megapixel-steps" in rule and "FLUX_MAX_WORK=40" in rule, rule
    assert response.headers["x-should-retry"] == "false"
    openai = ready_server.client.post("/v1/images/generations", json={
        "prompt": "huge", "size": "2048x2048", "n": 4, "num_inference_steps": 100})
    assert openai.status_code == 422
    assert "lower size, num_inference_steps or n" in openai.text


@pytest.fixture(scope="module")
def deadline_server(start_server):
    """Generations of 2 s; 0.5 s to start, 30 s to run."""
    server = start_server("deadlines", FLUX_MODEL="tiny", FLUX_TEST_GENERATE_DELAY="2",
                          FLUX_QUEUE_TIMEOUT="0.5", FLUX_RUN_TIMEOUT="30")
    assert server.wait_state("ready", "failed")["state"] == "ready"
    return server


def test_waiting_and_running_have_their_own_deadlines(deadline_server):
    answers: list = []
    first = threading.Thread(target=_post, args=(deadline_server.url, SMALL, answers, "runs"))
    first.start()
    deadline_server.wait_for(lambda: deadline_server.client.get("/model-status").json()
                             ["queue"]["running"], what="the first generation running")
    _post(deadline_server.url, SMALL, answers, "waits")
    first.join()
    by_id = {request_id: response for request_id, _, response in answers}
    assert by_id["runs"].status_code == 200  # ran 2 s: past the queue deadline, within run's
    waited = by_id["waits"]
    assert waited.status_code == 503, waited.text
    assert waited.json()["error"]["type"] == "QueueTimeout"
    assert "FLUX_QUEUE_TIMEOUT=0.5s" in waited.json()["error"]["message"]
    assert int(waited.headers["Retry-After"]) >= 1 and waited.headers["x-should-retry"] == "true"


def test_the_openai_sdk_makes_one_attempt_on_a_504(slow_server):
    import openai

    slow_server.wait_for(lambda: slow_server.client.get("/model-status").json()["queue"]
                         ["running"] is False, what="an idle worker")
    client = openai.OpenAI(base_url=slow_server.url + "/v1", api_key="unused", max_retries=2)
    with pytest.raises(openai.APIStatusError) as caught:
        client.images.generate(prompt="too slow", size="64x64", response_format="b64_json",
                               extra_headers={"X-Request-Id": "sdk-once"})
    assert caught.value.status_code == 504
    time.sleep(0.5)
    lines = [line for line in slow_server.log_text().splitlines()
             if "request id=sdk-once " in line]
    assert len(lines) == 1, lines  # one job: no retry of abandoned work


@pytest.fixture(scope="module")
def mixed_server(start_server):
    server = start_server("mixed", FLUX_MODEL="tiny", FLUX_QUEUE_SIZE="4")
    assert server.wait_state("ready", "failed")["state"] == "ready"
    return server


def test_retry_after_follows_the_work_queued(mixed_server):
    """After large jobs, rejected small ones are told about the small work ahead of them."""
    large = {**SMALL, "width": 1024, "height": 1024, "num_inference_steps": 16}
    for _ in range(2):
        assert mixed_server.client.post("/generate", json=large, timeout=120).status_code == 200
    answers: list = []
    threads = [threading.Thread(target=_post, args=(mixed_server.url, SMALL, answers, f"b{i}"))
               for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    served = [at for _, at, r in answers if r.status_code == 200]
    rejected = [(at, int(r.headers["Retry-After"])) for _, at, r in answers
                if r.status_code == 429]
    assert served and rejected, [r.status_code for _, _, r in answers]
    drained_at = max(served)
    for at, told in rejected:
        remaining = max(0.0, drained_at - at)  # what that client really had to wait
        assert told <= max(1, math.ceil(2 * remaining)), (told, remaining)
        assert told >= remaining / 2, (told, remaining)


def test_a_terminal_failure_says_it_will_not_clear(load_servers):
    server = load_servers["bad_path"]
    assert server.wait_state("failed")["state"] == "failed"
    response = server.client.post("/generate", json={"prompt": "x"})
    assert response.status_code == 503
    assert "Retry-After" not in response.headers
    assert response.headers["x-should-retry"] == "false"
    assert "will not clear by itself" in response.json()["error"]["message"]
    ready = server.client.get("/ready")
    assert ready.status_code == 503 and "Retry-After" not in ready.headers


def test_sigterm_delivers_the_generation_near_its_end_and_answers_the_queue(start_server):
    server = start_server("drain", FLUX_MODEL="tiny", FLUX_TEST_GENERATE_DELAY="4",
                          FLUX_SHUTDOWN_GRACE_S="10")
    assert server.wait_state("ready", "failed")["state"] == "ready"
    answers: list = []
    body = {**SMALL, "num_inference_steps": 8}  # 0.5 s a step
    threads = [threading.Thread(target=_post, args=(server.url, body, answers, "running"))]
    threads[0].start()
    server.wait_for(lambda: ((server.client.get("/model-status").json()["queue"]
                              ["running_steps"] or {}).get("done") or 0) >= 5,
                    what="5 of 8 steps done")
    for name in ("queued-1", "queued-2"):
        threads.append(threading.Thread(target=_post, args=(server.url, body, answers, name)))
        threads[-1].start()
    server.wait_for(lambda: server.client.get("/model-status").json()["queue"]["depth"] == 2,
                    what="two queued")
    server.proc.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(30)
    server.proc.wait(30)
    order = [request_id for request_id, _, _ in sorted(answers, key=lambda a: a[1])]
    by_id = {request_id: response for request_id, _, response in answers}
    assert by_id["running"].status_code == 200, by_id["running"].text  # delivered
    assert by_id["running"].content[:4] == b"\x89PNG"
    for name in ("queued-1", "queued-2"):
        assert by_id[name].status_code == 503
        assert by_id[name].json()["error"]["type"] == "ShuttingDown"
        assert by_id[name].headers["Retry-After"]
    assert order[-1] == "running"  # the queue was answered at once, not after the run
    log = server.log_text()
    assert "generation cancelled: id=running" not in log
    assert "Application shutdown complete" in log
