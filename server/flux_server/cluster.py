"""The pipeline as a Ray Serve deployment (imported only when FLUX_REPLICAS > 1, so Ray is
imported at module level here).

The HTTP API stays the plain FastAPI app of flux_server.app, in the endpoint's process; its
service is a ClusterService that forwards each generation through a Serve DeploymentHandle
to one FluxReplica. Each replica owns a FluxService (loader, one-at-a-time queue) on one GPU
(or, in tests, one unit of a custom resource) and reports its load state to a ReadyBoard
actor on the endpoint's node, which /ready reads.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from typing import Any

import ray
from prometheus_client import Gauge
from ray import serve
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
from ray.serve.exceptions import BackPressureError, RayServeException

from flux_server.cluster_status import ReplicaReport, cluster_view, serve_target
from flux_server.config import Settings
from flux_server.defaults import model_defaults
from flux_server.engine import GenerationParams
from flux_server.metrics import Metrics
from flux_server.params import generation_params
from flux_server.replica import NAMESPACE
from flux_server.reqlog import request_fields
from flux_server.scale_config import GPU_RESOURCE, ScaleSettings
from flux_server.serve_app import APP_NAME, flux_application, ready_board
from flux_server.service import READY_RETRY_AFTER_S, GenerationOutcome, HTTPProblem

log = logging.getLogger("flux_server.cluster")


class _ClusterState:
    """What app.py reads as `service.state`: the cluster's /ready body."""

    def __init__(self, service: ClusterService) -> None:
        self._service = service

    @property
    def state(self) -> str:
        return self._service.view().state

    def snapshot(self) -> dict:
        return self._service.ready_body()


class _ClusterQueue:
    """What app.py reads as `service.queue`: no local queue (Ray Serve queues)."""

    def __init__(self, service: ClusterService) -> None:
        self._service = service
        self.lock = threading.Lock()

    @property
    def depth(self) -> int:
        return 0

    def between_jobs(self) -> threading.Lock:
        """As JobQueue.between_jobs (nothing runs here: the replicas do)."""
        return self.lock

    def close(self) -> None:
        self._service.shutdown()


class _ClusterLora:
    """LoRA changes are not broadcast to replicas yet: say so clearly."""

    def status(self) -> dict:
        return {"active": False, "adapters": [],
                "note": "LoRA is not supported with several replicas yet"}

    def apply(self, *_args: Any) -> dict:
        raise HTTPProblem(501, "NotSupportedWithReplicas",
                          "LoRA cannot be applied to several replicas yet",
                          "deploy with one replica (scale.replicas: 1) to use LoRA")

    def remove(self, *_args: Any) -> dict:
        return self.status()


class ClusterService:
    """FluxService's interface (as app.py uses it) over a Ray Serve deployment."""

    def __init__(self, settings: Settings, scale: ScaleSettings,
                 config_error: Exception | None = None) -> None:
        self.settings, self.scale, self.config_error = settings, scale, config_error
        self.metrics = Metrics()
        self.state = _ClusterState(self)
        self.queue = _ClusterQueue(self)
        self.lora = _ClusterLora()
        self.defaults = model_defaults(settings.model, settings.tiny)
        self.handle: Any = None
        self.board: Any = None
        self._started = time.monotonic()
        self._deploy_error: str | None = None
        self._started_ray = False
        self._closed = False
        self._closing = threading.Event()
        self._reports: list[ReplicaReport] = []
        self.serve_status: dict = {}
        self._ready_gauge = Gauge("flux_replicas_ready", "Replicas ready",
                                  registry=self.metrics.registry)
        self._expected_gauge = Gauge("flux_replicas_expected", "Replicas expected",
                                     registry=self.metrics.registry)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self.config_error is not None:
            self._deploy_error = f"configuration error: {self.config_error}"
            log.error("%s", self._deploy_error)
            return
        threading.Thread(target=self._deploy, name="serve-deploy", daemon=True).start()

    def _deploy(self) -> None:
        try:
            if not ray.is_initialized():
                self._started_ray = self.scale.ray_address is None
                extra = {}
                if self._started_ray and self.scale.replica_resource != GPU_RESOURCE:
                    # a one-node Ray of our own: the custom resource stands in for its GPUs
                    extra["resources"] = {self.scale.replica_resource: self.scale.max_replicas}
                self._init_ray(extra)
            # on the head node, so that losing a worker node never loses the board
            self.board = ready_board(detached=self.scale.serve_managed)
            threading.Thread(target=self._refresh_loop, name="ready-board-reader",
                             daemon=True).start()
            if self.scale.serve_managed:  # KubeRay deploys it from serveConfigV2: join it
                self.handle = self._managed_handle()
            else:
                serve.start(proxy_location="Disabled")  # no Serve HTTP: this process is the API
                log.info("deploying %s on Ray Serve: %s", APP_NAME,
                         self.scale.deployment_options())
                # Not waiting for every replica: /ready shows them arrive one by one.
                self.handle = serve.run_many(
                    [serve.RunTarget(flux_application(self.settings, self.scale),
                                     name=APP_NAME, route_prefix=None)],
                    wait_for_applications_running=False)[0]
        except Exception as exc:
            self._deploy_error = f"{type(exc).__name__}: {exc}"
            log.exception("Ray Serve deployment failed")
        # When this thread started Ray's processes itself (no cluster to join), Linux kills
        # them as soon as it ends (PR_SET_PDEATHSIG is per thread): it lives until shutdown.
        self._closing.wait()

    def _managed_handle(self) -> Any:
        """The handle of the application KubeRay deployed (serve_app.build), once it exists."""
        while not self._closed:
            try:
                return serve.get_app_handle(APP_NAME)
            except RayServeException:  # Serve not started, or the application still building
                log.info("waiting for the RayService to deploy the %s application", APP_NAME)
                time.sleep(2.0)
        return None

    def _init_ray(self, extra: dict) -> None:
        """ray.init; a head still starting (same container, a moment ago) gets 60 s."""
        deadline = time.monotonic() + (60.0 if self.scale.ray_address else 0.0)
        while True:
            try:
                ray.init(address=self.scale.ray_address, namespace=NAMESPACE,
                         include_dashboard=False, log_to_driver=True,
                         configure_logging=False, **extra)
                return
            except ConnectionError:
                if time.monotonic() > deadline or self._closed:
                    raise
                log.info("waiting for the Ray head at %s", self.scale.ray_address)
                time.sleep(1.0)

    def begin_shutdown(self) -> None:
        """uvicorn's signal hook (flux_server.main). Nothing to flag here: `close()` deletes
        the Serve app when the lifespan ends, and each replica's service cancels its running
        generation then. (`_closing` must not be set yet: the deploy thread holds Ray's
        processes.)"""

    def close(self) -> None:
        """At the end of the app's lifespan: delete the Serve app (and Ray, if we started it)."""
        self.shutdown()

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        try:
            if ray.is_initialized() and not self.scale.serve_managed:  # not KubeRay's app
                serve.delete(APP_NAME)
                if self._started_ray:
                    serve.shutdown()
                    ray.shutdown()
        except Exception:
            log.warning("Ray Serve shutdown was not clean", exc_info=True)

    # -- readiness ---------------------------------------------------------------------------

    def reports(self) -> list[ReplicaReport]:
        """The board's reports as last read (a thread refreshes them; never blocks)."""
        return self._reports

    def _refresh_loop(self) -> None:
        rounds = 0
        while not self._closed:
            try:
                self._reports = ray.get(self.board.read.remote(), timeout=5)
                if rounds % 4 == 0:
                    self.serve_status = _app_status(serve.status(), APP_NAME)
            except Exception:
                log.warning("could not read the ready board", exc_info=True)
            rounds += 1
            time.sleep(0.25)

    def view(self):
        target = serve_target(self.serve_status.get("replica_states", {}))
        view = cluster_view(self.reports(), time.time(), self.scale.min_ready,
                            self.scale.min_replicas, target)
        self._ready_gauge.set(view.ready_count)
        self._expected_gauge.set(view.expected)
        return view

    def ready_body(self) -> dict:
        """The /ready body of docs/contract.md, plus `cluster` (each replica, `ready: 3/4`)."""
        view = self.view()
        failed = [r for r in view.replicas if r["state"] == "failed"]
        error = None
        if self._deploy_error:
            error = {"type": "ClusterError", "message": self._deploy_error,
                     "hint": "check FLUX_RAY_ADDRESS and that the Ray cluster is up "
                             "(PLAYBOOK.md#node-not-joined)"}
        elif failed and not view.ready:
            error = failed[-1]["error"]
        state = "failed" if self._deploy_error else view.state
        return {"state": state, "ready": view.ready and not self._deploy_error,
                "model": self.settings.model, "tiny": self.settings.tiny,
                "elapsed_s": round(time.monotonic() - self._started, 3),
                "phase_elapsed_s": {}, "progress": {}, "error": error,
                "cluster": {**view.as_dict(), "serve": self.serve_status}}

    def require_ready(self) -> Any:
        view = self.view()
        if self.handle is None or view.ready_count == 0:
            body = self.ready_body()
            hint = (body["error"] or {}).get("hint") or "wait for GET /ready to answer 200"
            message = f"no replica is ready ({view.as_dict()['ready']})"
            if body["state"] == "failed":  # terminal, as in service.py: no Retry-After
                raise HTTPProblem(503, "NotReady", message + "; this will not clear by itself: "
                                  "fix the cause and restart the server", hint,
                                  extra={"ready": body})
            raise HTTPProblem(503, "NotReady", message, hint,
                              {"Retry-After": str(READY_RETRY_AFTER_S)}, {"ready": body})
        return self.handle

    # -- generation --------------------------------------------------------------------------

    def params_for(self, prompt: str, width: int | None, height: int | None, steps: int | None,
                   guidance: float | None, seed: int | None, num_images: int,
                   negative_prompt: str | None = None, true_cfg_scale: float = 1.0,
                   fields: tuple[str, str, str] = ("width", "height", "num_images")
                   ) -> GenerationParams:
        return generation_params(self.defaults, self.settings, prompt, width, height, steps,
                                 guidance, seed, num_images, negative_prompt, true_cfg_scale,
                                 fields)

    async def generate(self, request: Any, params: GenerationParams,
                       output_format: str) -> GenerationOutcome:
        """Forward one generation to a replica; 429 when Serve's queue is full, one retry on
        another replica when the chosen one died (generation is idempotent for a seed)."""
        handle = self.require_ready()
        fields = request_fields(request.scope)
        fields.update(width=params.width, height=params.height, steps=params.steps)
        deadline = time.monotonic() + self.settings.request_timeout
        for attempt in (1, 2):
            try:
                result = await self._call(handle, request, params, output_format, deadline)
                break
            except BackPressureError as exc:
                self.metrics.rejected.inc()
                retry = exc.args[3] if len(exc.args) > 3 and exc.args[3] else (
                    self.scale.max_queued_requests / max(1, self.view().ready_count))
                retry = max(1, math.ceil(retry))
                raise HTTPProblem(429, "QueueFull",
                                  f"{self.scale.max_queued_requests} generations already "
                                  "waiting for a replica", "retry after the Retry-After seconds",
                                  {"Retry-After": str(retry)}) from None
            except (ActorDiedError, ActorUnavailableError, RayActorError) as exc:
                log.warning("replica lost during a request (attempt %d): %s", attempt,
                            str(exc).splitlines()[0])
                if attempt == 2:
                    raise HTTPProblem(503, "ReplicaLost",
                                      "the replica serving this request went away",
                                      "retry; GET /ready shows which replicas are up",
                                      {"Retry-After": str(READY_RETRY_AFTER_S)}) from None
        if "problem" in result:
            problem = result["problem"]
            error = problem["body"]["error"]
            raise HTTPProblem(problem["status"], error["type"], error["message"],
                              error.get("hint", ""), problem["headers"],
                              {k: v for k, v in problem["body"].items() if k != "error"})
        fields.update(queue_wait_s=result["queue_wait_s"], generation_s=result["generation_s"],
                      replica=result["replica"])
        self.metrics.generation_seconds.observe(result["generation_s"])
        self.metrics.queue_wait_seconds.observe(result["queue_wait_s"])
        self.metrics.images.inc(len(result["images"]))
        return GenerationOutcome(result["images"], result["seed"], params, output_format,
                                 result["queue_wait_s"], result["generation_s"])

    async def _call(self, handle: Any, request: Any, params: GenerationParams,
                    output_format: str, deadline: float) -> dict:
        """One call through the handle, cancelled when the client leaves or time runs out."""
        response = handle.generate.remote(params, output_format)
        task = asyncio.ensure_future(_awaited(response))
        while not task.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                response.cancel()
                task.cancel()
                raise HTTPProblem(504, "Timeout", "generation did not finish within "
                                  f"FLUX_REQUEST_TIMEOUT={self.settings.request_timeout:g}s",
                                  "lower steps or size, or raise FLUX_REQUEST_TIMEOUT")
            await asyncio.wait({task}, timeout=min(0.25, remaining))
            if not task.done() and await request.is_disconnected():
                response.cancel()
                task.cancel()
                self.metrics.dropped.inc()
                raise HTTPProblem(499, "ClientClosedRequest", "client went away")
        return task.result()

    def model_status(self) -> dict:
        body = self.ready_body()
        status: dict = {"model": self.settings.model, "tiny": self.settings.tiny,
                        "state": body["state"], "ready": body["ready"], "error": body["error"],
                        "kind": self.defaults.kind, "scale": self.scale.public(),
                        "cluster": body["cluster"], "settings": self.settings.public(),
                        "replica": None}
        if self.handle is not None and body["cluster"]["ready_replicas"]:
            try:
                status["replica"] = self.handle.model_status.remote().result(timeout_s=10)
            except Exception as exc:  # noqa: BLE001 - the cluster part is still useful
                status["replica"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        return status


async def _awaited(response: Any) -> Any:
    return await response


def _app_status(status: Any, app: str) -> dict:
    """Serve's own word on the application: status, message, replicas by state."""
    found = status.applications.get(app)
    if found is None:
        return {}
    replicas = {}
    for deployment in found.deployments.values():
        replicas = {str(k): v for k, v in deployment.replica_states.items()}
    return {"status": str(found.status), "message": found.message[:500],
            "replica_states": replicas}
