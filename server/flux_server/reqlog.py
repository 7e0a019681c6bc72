"""One structured log line per request (ASGI middleware), plus the latency histogram."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Mapping, MutableMapping
from typing import Any

from flux_server.metrics import Metrics

log = logging.getLogger("flux_server.request")
LOG_KEY = "flux.log"
REQUEST_ID_KEY = "flux.request_id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
FIELDS = ("width", "height", "steps", "queue_wait_s", "generation_s")


def request_fields(scope: MutableMapping[str, Any]) -> dict[str, Any]:
    """The mutable per-request log fields a handler may fill in."""
    return scope.setdefault(LOG_KEY, {})


def request_id_of(scope: Mapping[str, Any]) -> str:
    """The id the request line will carry (`-` outside the middleware)."""
    return scope.get(REQUEST_ID_KEY, "-")


def format_line(request_id: str, route: str, status: int, fields: dict[str, Any],
                duration_s: float) -> str:
    """`request id=... route=... status=... width=... ...` (docs/contract.md)."""
    parts = [f"id={request_id}", f"route={route}", f"status={status}"]
    for name in FIELDS:
        value = fields.get(name)
        parts.append(f"{name}={value:.3f}" if isinstance(value, float) else
                     f"{name}={value if value is not None else '-'}")
    parts.append(f"duration_s={duration_s:.3f}")
    for name, value in fields.items():
        if name not in FIELDS:
            parts.append(f"{name}={value}")
    return "request " + " ".join(parts)


class RequestLogMiddleware:
    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")[:64]
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex[:12]
        scope[REQUEST_ID_KEY] = request_id
        fields = request_fields(scope)
        status_holder = {"status": 500}

        async def send_wrapper(message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [
                    (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            duration = time.perf_counter() - started
            route = scope.get("route")
            route_name = getattr(route, "path", None) or "unmatched"
            status = status_holder["status"]
            self.metrics.request_seconds.labels(route=route_name, status=str(status)).observe(
                duration)
            log.info(format_line(request_id, scope.get("path", route_name), status, fields,
                                 duration))
