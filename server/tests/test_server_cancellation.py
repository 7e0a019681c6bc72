"""Abandoned generations stop at the next denoising step: when the request times out, when
its client disconnects, and when the server shuts down (SIGTERM).

The real processes hold each generation with FLUX_TEST_GENERATE_DELAY, which the engine
spreads over the denoising steps and sleeps, uninterruptibly, at the end of each step: a
stand-in for a slow step on a GPU. The worker logs, for every stopped generation, the step
at which the cancel arrived and the step after which it stopped; the tests assert on those
step counts, not on wall time.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import threading
import time

import httpx
import pytest

STOPPED = re.compile(r"generation cancelled: id=(?P<id>\S+) reason=(?P<reason>\S+) "
                     r"cancelled_at_step=(?P<at>\d+)/(?P<total>\d+) "
                     r"stopped_after_step=(?P<after>\d+)/\d+")


def _find_stopped(log_text: str, request_id: str) -> dict | None:
    """The worker's line for `request_id` (reason and step counts), if logged."""
    for match in STOPPED.finditer(log_text):
        if match["id"] == request_id:
            return {k: (v if k in ("id", "reason") else int(v))
                    for k, v in match.groupdict().items()}
    return None


def _stopped(server, request_id: str) -> dict:
    return server.wait_for(lambda: _find_stopped(server.log_text(), request_id), timeout=60,
                           what=f"the stop of {request_id}")


def _cancelled_total(server, reason: str) -> float:
    text = server.client.get("/metrics").text
    match = re.search(rf'^flux_generations_cancelled_total{{reason="{reason}"}} (\S+)$', text,
                      re.MULTILINE)
    assert match, text
    return float(match.group(1))


def _steps_done(server) -> int | None:
    running = server.client.get("/model-status").json()["queue"]["running_steps"]
    return running["done"] if running else None


def _request_line(server, request_id: str) -> str:
    marker = f"flux_server.request: request id={request_id} "
    return server.wait_for(lambda: next((line for line in server.log_text().splitlines()
                                         if marker in line), None), what="the request line")


def _open_generation(server, request_id: str, steps: int) -> socket.socket:
    """POST /generate on a raw socket (closing it is a client that leaves)."""
    body = json.dumps({"prompt": "abandoned", "num_inference_steps": steps, "seed": 5})
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall((f"POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  f"Content-Type: application/json\r\nX-Request-Id: {request_id}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
    return sock


@pytest.fixture(scope="module")
def held_server(start_server):
    """Each generation held 8 s in all (1 s per step at 8 steps); no short timeout; a
    2 s shutdown grace (a generation with more left than that is stopped on SIGTERM)."""
    server = start_server("held", FLUX_MODEL="tiny", FLUX_TEST_GENERATE_DELAY="8",
                          FLUX_SHUTDOWN_GRACE_S="2")
    server.wait_state("ready", "failed")
    return server


def test_engine_stops_after_the_step_in_progress_and_never_decodes(tiny_dir):
    """In-process, on the real tiny pipeline: a cancel that arrives during step 3 of 6
    stops the pipeline right after step 3; the VAE never decodes the abandoned latents."""
    from diffusers import FluxPipeline
    from flux_server.engine import GenerationCancelled, GenerationParams, generate

    pipe = FluxPipeline.from_pretrained(str(tiny_dir))
    pipe.set_progress_bar_config(disable=True)
    calls = {"transformer": 0, "vae_decoder": 0}
    cancel = threading.Event()

    def count_transformer(_module, _args):
        calls["transformer"] += 1
        if calls["transformer"] == 3:
            cancel.set()  # the request goes away while step 3 runs

    def count_decoder(_module, _args):
        calls["vae_decoder"] += 1

    pipe.transformer.register_forward_pre_hook(count_transformer)
    pipe.vae.decoder.register_forward_pre_hook(count_decoder)
    steps_seen = []
    with pytest.raises(GenerationCancelled) as stopped:
        generate(pipe, GenerationParams("a fox", 64, 64, 6, 0.0, 1), cancel.is_set,
                 on_step=lambda done, total: steps_seen.append((done, total)))
    assert (stopped.value.steps_done, stopped.value.steps) == (3, 6)
    assert calls == {"transformer": 3, "vae_decoder": 0}
    assert steps_seen == [(1, 6), (2, 6), (3, 6)]
    cancel.clear()
    images = generate(pipe, GenerationParams("a fox", 64, 64, 2, 0.0, 1), cancel.is_set)
    assert len(images) == 1 and calls["vae_decoder"] == 1  # the pipeline is fine afterwards


def test_queue_close_drops_the_waiting_and_stops_the_running_job():
    from flux_server.jobs import JobDropped, JobQueue

    started = threading.Event()

    def run_until_cancelled(job):
        started.set()
        while not job.cancelled:
            time.sleep(0.01)
        return f"stopped: {job.cancel_reason}"

    queue = JobQueue(4)
    running = queue.submit(run_until_cancelled)
    assert started.wait(10)
    waiting = queue.submit(lambda job: "never runs")
    assert queue.close("shutdown", wait_s=10) is True  # the worker thread has ended
    assert running.future.result(0) == "stopped: shutdown"
    assert isinstance(waiting.future.exception(0), JobDropped) and queue.dropped == 1


def test_client_that_disconnects_frees_the_worker_within_one_step(held_server):
    before = _cancelled_total(held_server, "client_disconnected")
    sock = _open_generation(held_server, "leaves-mid-run", steps=8)
    seen = held_server.wait_for(lambda: (_steps_done(held_server) or 0) >= 1,
                                what="the first step done") and _steps_done(held_server)
    sock.close()
    stop = _stopped(held_server, "leaves-mid-run")
    assert stop["reason"] == "client_disconnected" and stop["total"] == 8
    assert stop["at"] >= seen  # the disconnect was noticed, not guessed before it happened
    assert stop["after"] - stop["at"] <= 1  # stopped at the end of the step in progress
    assert stop["after"] < 8
    held_server.wait_for(lambda: _steps_done(held_server) is None, what="the worker idle")
    assert _cancelled_total(held_server, "client_disconnected") == before + 1
    line = _request_line(held_server, "leaves-mid-run")
    assert "status=499" in line and "cancelled=client_disconnected" in line


def test_request_past_its_timeout_stops_its_generation(slow_server):
    """FLUX_RUN_TIMEOUT=2.5 s with 10 steps of 0.5 s: the 504 comes at 2.5 s, and the
    generation stops at the step after it instead of running its 5 s out."""
    before = _cancelled_total(slow_server, "timeout")
    response = slow_server.client.post("/generate", headers={"X-Request-Id": "too-slow"},
                                       json={"prompt": "late", "num_inference_steps": 10})
    assert response.status_code == 504
    stop = _stopped(slow_server, "too-slow")
    assert stop["reason"] == "timeout"
    assert stop["after"] - stop["at"] <= 1 and stop["after"] < 10
    assert _cancelled_total(slow_server, "timeout") == before + 1
    line = _request_line(slow_server, "too-slow")
    assert "status=504" in line and "cancelled=timeout" in line


def test_sigterm_during_a_generation_exits_within_seconds(held_server):
    """Last in this module: it ends the held server."""
    answers: list[httpx.Response] = []

    def post() -> None:
        answers.append(httpx.post(held_server.url + "/generate", timeout=60,
                                  headers={"X-Request-Id": "at-shutdown"},
                                  json={"prompt": "shutdown", "num_inference_steps": 8}))

    client = threading.Thread(target=post)
    client.start()
    held_server.wait_for(lambda: (_steps_done(held_server) or 0) >= 1, what="a step done")
    held_server.proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    held_server.proc.wait(timeout=15)  # a deadline, not a measurement
    exit_s = time.monotonic() - sent
    client.join(10)
    print(f"exited {exit_s:.2f} s after SIGTERM (one step is 1 s)")
    log = held_server.log_text()
    stop = _find_stopped(log, "at-shutdown")
    assert stop, log[-3000:]
    assert stop["reason"] == "shutdown" and stop["after"] < 8
    assert stop["after"] - stop["at"] <= 1
    assert answers and answers[0].status_code == 503
    assert answers[0].json()["error"]["type"] == "ShuttingDown"
    assert answers[0].headers["Retry-After"]
    assert "Application shutdown complete" in log
    assert "still running" not in log  # the worker stopped; nothing was abandoned mid-step
