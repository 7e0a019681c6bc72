"""Pure pieces of the server: settings, state machine, failure reasons, redaction, request
rules, defaults, log lines, the job queue and image encoding."""

from __future__ import annotations

import io
import logging
import threading
import time

import pytest
from flux_server.config import Settings, SettingsError, hf_token_from, settings_from_env
from flux_server.defaults import model_defaults
from flux_server.failures import explain
from flux_server.jobs import JobDropped, JobQueue, QueueFull
from flux_server.redact import RedactingFilter, redact
from flux_server.reqlog import format_line
from flux_server.schemas import InputError, check_limits, parse_size
from flux_server.state import Failure, LoadState, TransitionError


# -- settings ---------------------------------------------------------------------------
def test_settings_defaults_follow_the_contract():
    s = settings_from_env({})
    assert (s.port, s.host, s.model, s.memory, s.quant, s.dtype) == (
        8000, "0.0.0.0", "black-forest-labs/FLUX.1-schnell", "auto", "none", None)
    assert (s.queue_size, s.queue_timeout, s.run_timeout, s.max_side, s.max_images) == (
        16, 120.0, 300.0, 2048, 4)
    assert s.request_timeout == 420.0  # the Ray front's bound: wait + run
    assert s.max_work is None and s.shutdown_grace_s == 10.0 and s.max_body_bytes == 1048576
    assert s.device_map is None and s.hf_token is None and not s.tiny


def test_the_old_single_timeout_sets_both_deadlines_unless_they_are_given():
    old = settings_from_env({"FLUX_REQUEST_TIMEOUT": "60"})
    assert (old.queue_timeout, old.run_timeout, old.request_timeout) == (60.0, 60.0, 60.0)
    new = settings_from_env({"FLUX_REQUEST_TIMEOUT": "60", "FLUX_RUN_TIMEOUT": "90"})
    assert (new.queue_timeout, new.run_timeout) == (60.0, 90.0)
    assert settings_from_env({"FLUX_MAX_WORK": "12.5"}).max_work == 12.5


def test_settings_parse_every_variable():
    s = settings_from_env({"PORT": "9000", "FLUX_HOST": "127.0.0.1", "FLUX_MODEL": "tiny",
                           "FLUX_MEMORY": "Model-Offload", "FLUX_QUANT": "nf4",
                           "FLUX_DTYPE": "fp16", "FLUX_DEVICE_MAP": "balanced",
                           "FLUX_QUEUE_SIZE": "3", "FLUX_REQUEST_TIMEOUT": "2.5",
                           "FLUX_MAX_SIDE": "1024", "FLUX_MAX_IMAGES": "2"})
    assert (s.port, s.host, s.tiny, s.memory, s.quant, s.dtype, s.device_map) == (
        9000, "127.0.0.1", True, "model-offload", "nf4", "fp16", "balanced")
    assert (s.queue_size, s.request_timeout, s.max_side, s.max_images) == (3, 2.5, 1024, 2)


@pytest.mark.parametrize("env,name", [
    ({"FLUX_MEMORY": "lots"}, "FLUX_MEMORY"), ({"FLUX_QUANT": "int4"}, "FLUX_QUANT"),
    ({"FLUX_DTYPE": "fp64"}, "FLUX_DTYPE"), ({"FLUX_QUEUE_SIZE": "0"}, "FLUX_QUEUE_SIZE"),
    ({"PORT": "http"}, "PORT"), ({"FLUX_MAX_SIDE": "1000"}, "FLUX_MAX_SIDE"),
])
def test_bad_settings_name_the_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        settings_from_env(env)


def test_token_aliases_in_order_and_never_in_public_view():
    assert hf_token_from({"HUGGINGFACE_TOKEN": "c", "HUGGINGFACEHUB_API_TOKEN": "b"}) == "b"
    assert hf_token_from({"HF_TOKEN": " a ", "HUGGINGFACE_TOKEN": "c"}) == "a"
    assert hf_token_from({"HF_TOKEN": ""}) is None
    public = Settings(hf_token="hf_secretvalue123").public()
    assert "hf_secretvalue123" not in str(public) and public["hf_token_set"] is True


# -- state machine ----------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_state_machine_times_each_phase():
    clock = Clock()
    state = LoadState("m", False, clock)
    clock.now += 1
    state.advance("downloading")
    state.set_progress(bytes_done=5, bytes_total=10)
    clock.now += 2
    snap = state.snapshot()
    assert snap["state"] == "downloading" and snap["elapsed_s"] == 3.0
    assert snap["phase_elapsed_s"] == {"starting": 1.0, "downloading": 2.0}
    assert snap["progress"] == {"bytes_done": 5, "bytes_total": 10}
    state.advance("loading")
    state.advance("warming")
    clock.now += 1
    state.advance("ready")
    snap = state.snapshot()
    assert snap["ready"] and snap["phase_elapsed_s"]["warming"] == 1.0


def test_failed_is_terminal_and_carries_the_reason():
    state = LoadState("m", False, Clock())
    state.fail(Failure("GatedRepoError", "401", "Set HF_TOKEN"))
    assert state.snapshot()["error"] == {"type": "GatedRepoError", "message": "401",
                                         "hint": "Set HF_TOKEN"}
    with pytest.raises(TransitionError):
        state.advance("loading")
    state.fail(Failure("Other", "x", "y"))  # ignored once failed
    assert state.failure.type == "GatedRepoError"


def test_state_rejects_skipping_phases():
    with pytest.raises(TransitionError):
        LoadState("m", False).advance("ready")


# -- failure reasons --------------------------------------------------------------------
class GatedRepoError(Exception):
    pass


class RepositoryNotFoundError(Exception):
    pass


def test_gated_without_token_names_hf_token_not_ghcr():
    failure = explain(GatedRepoError("401 Client Error"), Settings(model="org/gated"))
    assert failure.type == "GatedRepoError" and "HF_TOKEN" in failure.hint
    assert "GHCR" not in failure.hint and "ghcr" not in failure.hint.lower()


def test_gated_with_token_says_it_was_refused_and_redacts_it():
    settings = Settings(model="org/gated", hf_token="hf_abcdefghijkl")
    failure = explain(GatedRepoError("bad token hf_abcdefghijkl"), settings)
    assert "refused" in failure.hint and "hf_abcdefghijkl" not in failure.message


def test_wrapped_errors_are_explained_by_their_known_cause():
    try:
        try:
            raise GatedRepoError("403")
        except GatedRepoError as inner:
            raise OSError("Cannot load model org/gated") from inner
    except OSError as outer:
        failure = explain(outer, Settings(model="org/gated"))
    assert failure.type == "GatedRepoError"


def test_other_hints():
    s = Settings(model="org/x")
    assert "spelling" in explain(RepositoryNotFoundError("404"), s).hint
    assert "FLUX_DEVICE_MAP" in explain(NotImplementedError("auto not supported"),
                                        Settings(device_map="auto")).hint
    assert "model_index.json" in explain(OSError("no file named model_index.json"), s).hint
    assert explain(RuntimeError("weird"), s).hint.startswith("see the server log")


# -- redaction --------------------------------------------------------------------------
def test_redact_known_values_and_token_shapes():
    assert redact("token=abcd1234 other", ["abcd1234"]) == "token=*** other"
    assert redact("Bearer hf_AbCdEf123456789") == "Bearer ***"


def test_redacting_filter_cleans_messages_and_tracebacks():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(["s3cr3tvalue"]))
    logger = logging.getLogger("test.redact")
    logger.addHandler(handler)
    try:
        try:
            raise ValueError("bad s3cr3tvalue")
        except ValueError:
            logger.exception("failed with %s", "s3cr3tvalue")
    finally:
        logger.removeHandler(handler)
    assert "s3cr3tvalue" not in stream.getvalue() and "***" in stream.getvalue()


# -- request rules and defaults -------------------------------------------------------------
def test_parse_size():
    assert parse_size("1024x768") == (1024, 768)
    for bad in ("1024", "axb", "1024*1024", ""):
        with pytest.raises(InputError):
            parse_size(bad)


@pytest.mark.parametrize("width,height,n,field", [
    (1000, 64, 1, "width"), (64, 4096, 1, "height"), (48, 64, 1, "width"), (64, 64, 5, "n"),
])
def test_check_limits(width, height, n, field):
    with pytest.raises(InputError) as caught:
        check_limits(width, height, n, 2048, 4, images_field="n")
    assert caught.value.field == field


def test_model_defaults():
    assert model_defaults("black-forest-labs/FLUX.1-schnell", False).steps == 4
    dev = model_defaults("black-forest-labs/FLUX.1-dev", False)
    assert (dev.steps, dev.guidance_scale) == (28, 3.5)
    assert model_defaults("/models/mine", False, guidance_embeds=True).kind == "dev"
    assert model_defaults("tiny", True).steps == 2


def test_request_log_line():
    line = format_line("abc", "/generate", 200, {"width": 64, "height": 64, "steps": 2,
                                                   "queue_wait_s": 0.25}, 1.5)
    assert line.startswith("request id=abc route=/generate status=200 width=64 height=64 "
                           "steps=2 queue_wait_s=0.250 generation_s=- duration_s=1.500")


# -- job queue --------------------------------------------------------------------------
def test_queue_runs_jobs_one_at_a_time_in_order():
    queue = JobQueue(max_waiting=10)
    active, order, overlap = [0], [], []

    def work(index):
        def run(_job):
            active[0] += 1
            overlap.append(active[0])
            time.sleep(0.01)
            order.append(index)
            active[0] -= 1
            return index
        return run

    jobs = [queue.submit(work(i)) for i in range(5)]
    assert [job.future.result(5) for job in jobs] == list(range(5))
    assert order == list(range(5)) and max(overlap) == 1
    queue.close()


def test_queue_full_and_dropped_jobs():
    queue = JobQueue(max_waiting=1)
    gate = threading.Event()
    running = queue.submit(lambda job: gate.wait(5))
    while queue.running is None:
        time.sleep(0.005)
    waiting = queue.submit(lambda job: "never")
    with pytest.raises(QueueFull):
        queue.submit(lambda job: "no room")
    waiting.cancel("client disconnected")
    assert queue.depth == 0 and queue.dropped == 1  # its place is freed at once
    replacement = queue.submit(lambda job: "ran")
    gate.set()
    assert replacement.future.result(5) == "ran"
    assert running.future.result(5) is True
    with pytest.raises(JobDropped):
        waiting.future.result(5)
    assert queue.dropped == 1
    queue.close()


def test_job_errors_reach_the_caller_and_the_worker_survives():
    queue = JobQueue(max_waiting=2)

    def boom(_job):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        queue.submit(boom).future.result(5)
    assert queue.submit(lambda job: 42).future.result(5) == 42
    queue.close()


# -- image encoding ---------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_encode_image_formats_are_deterministic(fmt):
    from flux_server.engine import encode_image
    from PIL import Image

    image = Image.new("RGB", (32, 16), (10, 200, 30))
    data = encode_image(image, fmt)
    assert data == encode_image(image, fmt)
    assert Image.open(io.BytesIO(data)).format == {"png": "PNG", "jpeg": "JPEG",
                                                   "webp": "WEBP"}[fmt]
