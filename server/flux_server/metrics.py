"""Prometheus metrics, one registry per app (so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from flux_server.gpu_metrics import register_gpu_metrics
from flux_server.state import STATES

# The classic text format every Prometheus scraper reads (prometheus_client's "latest" is
# now 1.0.0); documented as /metrics' content type in the OpenAPI schema.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
CANCEL_REASONS = ("timeout", "client_disconnected", "shutdown", "request_cancelled")
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.request_seconds = Histogram(
            "flux_request_duration_seconds", "HTTP request latency", ["route", "status"],
            buckets=LATENCY_BUCKETS, registry=r)
        self.generation_seconds = Histogram(
            "flux_generation_seconds", "Time spent generating (excluding queue wait)",
            buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait_seconds = Histogram(
            "flux_queue_wait_seconds", "Time a generation waited in the queue",
            buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("flux_queue_depth", "Generations waiting", registry=r)
        self.ready = Gauge("flux_ready", "1 when the model is loaded and warmed up", registry=r)
        self.state = Gauge("flux_load_state", "1 for the current load state", ["state"],
                           registry=r)
        self.images = Counter("flux_images_generated_total", "Images generated", registry=r)
        self.rejected = Counter("flux_queue_rejected_total", "Requests refused (queue full)",
                                registry=r)
        self.dropped = Counter("flux_queue_dropped_total",
                               "Queued requests dropped (client left or timed out)", registry=r)
        self.cancelled = Counter(
            "flux_generations_cancelled_total",
            "Running generations stopped at a denoising step, by why their request ended",
            ["reason"], registry=r)
        for reason in CANCEL_REASONS:
            self.cancelled.labels(reason=reason)
        self.unauthorized = Counter(
            "flux_requests_unauthorized_total",
            "Requests refused with 401 (FLUX_API_KEYS_FILE): no key, or a wrong one",
            ["reason"], registry=r)
        for reason in ("missing", "rejected"):
            self.unauthorized.labels(reason=reason)
        self.gpu = register_gpu_metrics(r)  # per-GPU gauges through NVML; none on CPU

    def set_state(self, state: str) -> None:
        for name in STATES:
            self.state.labels(state=name).set(1 if name == state else 0)
        self.ready.set(1 if state == "ready" else 0)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE
