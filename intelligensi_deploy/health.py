"""Reading the server's `/ready` (docs/contract.md) and waiting on it.

The wait tells three outcomes apart: ready, failed (the server said why, terminal), and still
loading past the deadline (which is not a reason to redeploy: the playbook's golden rule).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from tenacity import RetryCallState, Retrying, retry_if_result

from intelligensi_deploy.endpoint import Endpoint
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.tls_pin import ServerTls

if TYPE_CHECKING:
    from intelligensi_deploy.remote.host_protocol import Host

LOADING_STATES = ("starting", "downloading", "loading", "warming")


@dataclass(frozen=True)
class ReadyStatus:
    """One answer of `/ready`, or the reason there was none (`unreachable`)."""

    state: str
    http_status: int | None = None
    model: str = ""
    tiny: bool = False
    elapsed_s: float = 0.0
    progress: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    unreachable: str | None = None
    cluster: dict[str, Any] | None = None  # a Ray Serve cluster's replicas (docs/contract.md)
    activity: dict[str, Any] | None = None  # requests in flight and idle time (the idle limit)
    phases: dict[str, float] = field(default_factory=dict)  # phase_elapsed_s: seconds each

    @classmethod
    def parse(cls, http_status: int, body: Any) -> ReadyStatus:
        """Parse a `/ready` JSON body; anything malformed is reported, not raised."""
        if not isinstance(body, dict) or "state" not in body:
            return cls(state="unknown", http_status=http_status,
                       unreachable=f"HTTP {http_status} without a /ready body")
        return cls(
            state=str(body["state"]),
            http_status=http_status,
            model=str(body.get("model") or ""),
            tiny=bool(body.get("tiny")),
            elapsed_s=float(body.get("elapsed_s") or 0.0),
            progress=dict(body.get("progress") or {}),
            error=body.get("error") or None,
            cluster=body.get("cluster") if isinstance(body.get("cluster"), dict) else None,
            activity=body.get("activity") if isinstance(body.get("activity"), dict) else None,
            phases={str(k): float(v) for k, v in (body.get("phase_elapsed_s") or {}).items()
                    if isinstance(v, (int, float))},
        )

    @property
    def ready(self) -> bool:
        return self.state == "ready" and self.http_status == 200

    @property
    def failed(self) -> bool:
        return self.state == "failed"

    @property
    def loading(self) -> bool:
        return self.state in LOADING_STATES

    def describe(self) -> str:
        """A short human line: `downloading 1.2/23.8 GB`, `loading 3/7`, `ready`..."""
        if self.unreachable:
            return f"waiting for the server ({self.unreachable})"
        text = self.state
        p = self.progress
        if self.state == "downloading" and p.get("bytes_total"):
            text += f" {_gb(p.get('bytes_done', 0))}/{_gb(p['bytes_total'])} GB"
        elif self.state == "loading" and p.get("components_total"):
            text += f" component {p.get('components_done', 0)}/{p['components_total']}"
        elif self.state == "warming" and p.get("warm_sizes_total"):
            text += f" {p.get('warm_sizes_done', 0)}/{p['warm_sizes_total']} sizes"
        if self.failed and self.error:
            text += f": {self.error.get('type', '')}: {self.error.get('message', '')}"
        if self.cluster:
            text += f", replicas ready {self.cluster.get('ready', '?')}{replica_phases(self.cluster)}"
        return text


def replica_phases(cluster: dict[str, Any]) -> str:
    """` (node 10.0.0.2: ready; node 10.0.0.3: downloading 0.42 GB, loading)`: each node's
    replicas and their phase, as the head's /ready lists them."""
    by_node: dict[str, list[str]] = {}
    for row in cluster.get("replicas") or []:
        phase = str(row.get("state", "?"))
        done = (row.get("progress") or {}).get("bytes_done")
        if phase == "downloading" and done:
            phase += f" {_gb(done)} GB"
        if phase == "failed" and row.get("error"):
            phase += f" ({(row['error'] or {}).get('type', '')})"
        by_node.setdefault(str(row.get("node_ip", "?")), []).append(phase)
    if not by_node:
        return ""
    return " (" + "; ".join(f"node {ip}: {', '.join(p)}" for ip, p in sorted(by_node.items())) \
        + ")"


def _gb(n: Any) -> str:
    return f"{float(n) / 1e9:.2f}"


class ServerFailed(FluxdeployError):
    """The server reported `failed`: the model could not load. Redeploying will not help."""


class ReadyTimeout(FluxdeployError):
    """The deadline passed while the server was still unreachable or loading."""


def fetch_ready(server: Endpoint | str, timeout: float = 5.0) -> ReadyStatus:
    """GET `/ready` once (a URL string: plain HTTP, the system's trust). A certificate other
    than the pinned one raises CertificateChanged: it is no reason to wait."""
    import httpx  # lazy: health.py is imported for ReadyStatus by code that never fetches

    endpoint = server if isinstance(server, Endpoint) else Endpoint(server)
    try:
        response = endpoint.get("/ready", timeout=timeout)
    except httpx.HTTPError as exc:
        return ReadyStatus(state="unreachable", unreachable=type(exc).__name__)
    try:
        body = response.json()
    except ValueError:
        body = None
    return ReadyStatus.parse(response.status_code, body)


def wait_ready(
    probe: Callable[[], ReadyStatus],
    timeout: float,
    *,
    on_status: Callable[[ReadyStatus], None] = lambda s: None,
    interval: float = 1.0,
    quick: float = 0.5,
    quick_for: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ReadyStatus:
    """Poll `probe` until ready; raise ServerFailed on `failed`, ReadyTimeout at the deadline.

    For the first `quick_for` seconds it polls every `quick` seconds: a container that is
    ready in seconds (a cached model, a restart) is seen at once; a long load (a 30 GB
    download) is then polled every `interval`."""
    started = clock()
    deadline = started + timeout

    def poll() -> ReadyStatus:
        status = probe()
        on_status(status)
        if status.failed:
            err = status.error or {}
            raise ServerFailed(
                f"The server could not load the model: {err.get('type', 'error')}: "
                f"{err.get('message', '')}",
                fix=(err.get("hint") or "Read the container log (`fluxdeploy logs`).")
                + " Then run `fluxdeploy doctor`.",
                doc="golden-rule",
            )
        return status

    def timed_out(state: RetryCallState) -> NoReturn:
        assert state.outcome is not None
        raise ReadyTimeout(
            f"Not ready after {timeout:.0f} s; last seen: {state.outcome.result().describe()}.",
            fix="If it is still downloading or loading, do not redeploy: wait and watch "
            "`fluxdeploy status`. Otherwise run `fluxdeploy doctor`.",
            doc="still-loading",
        )

    retrying = Retrying(
        retry=retry_if_result(lambda status: not status.ready),
        stop=lambda _: clock() >= deadline,
        wait=lambda _: quick if clock() - started < quick_for else interval,
        sleep=sleep,
        retry_error_callback=timed_out,
    )
    return retrying(poll)


@contextmanager
def server_url(host: Host, port: int, tls: ServerTls | None = None) -> Iterator[Endpoint]:
    """An endpoint on this machine that reaches the server on the host's 127.0.0.1:port
    (HTTPS with the pinned certificate `tls`, when the server has one)."""
    with host.forward(port) as local_port:
        yield Endpoint.loopback(local_port, tls)


def probe_ready(host: Host, port: int, tls: ServerTls | None = None) -> ReadyStatus:
    """One `/ready` answer from the server on `host` (through a forward: firewall closed)."""
    with server_url(host, port, tls) as server:
        return fetch_ready(server)
