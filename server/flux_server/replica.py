"""One pipeline replica on Ray Serve (FluxReplica) and the actor its load state goes to
(ReadyBoard). Imported only when FLUX_REPLICAS > 1 (see flux_server.cluster), so Ray is
imported at module level here."""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import ray
from ray import serve

from flux_server.cluster_status import ReplicaReport
from flux_server.config import Settings
from flux_server.engine import GenerationParams
from flux_server.logs import log_into_replica_file, setup_logging
from flux_server.service import FluxService, HTTPProblem

log = logging.getLogger("flux_server.replica")

BOARD_NAME = "flux-ready-board"
NAMESPACE = "fluxdeploy"
REPORT_EVERY_S = 1.0


class ReadyBoard:
    """A Ray actor: the last report of every replica (see cluster_status)."""

    def __init__(self) -> None:
        self._reports: dict[str, ReplicaReport] = {}

    def report(self, replica: str, node_id: str, node_ip: str, snapshot: dict,
               final: bool = False) -> None:
        self._reports[replica] = ReplicaReport(replica, node_id, node_ip, snapshot,
                                               time.time(), final)

    def read(self) -> list[ReplicaReport]:
        return list(self._reports.values())


class FluxReplica:
    """One pipeline replica: the plain server's FluxService, without HTTP."""

    def __init__(self, settings: Settings) -> None:
        setup_logging(settings.hf_token)
        log_into_replica_file(settings.hf_token)
        context = ray.get_runtime_context()
        self.replica_id = serve.get_replica_context().replica_id.unique_id
        self.node_id, self.node_ip = context.get_node_id(), ray.util.get_node_ip_address()
        self.board = ray.get_actor(BOARD_NAME, namespace=NAMESPACE)
        self.service = FluxService(settings)
        self._stop = threading.Event()
        log.info("replica %s on node %s: loading %s", self.replica_id, self.node_ip,
                 settings.model)
        self.service.start()
        threading.Thread(target=self._report_loop, name="ready-reporter", daemon=True).start()
        # Serve routes requests only to replicas whose constructor returned: wait for the load.
        while self.service.state.state not in ("ready", "failed"):
            time.sleep(0.1)
        self._report()
        failure = self.service.state.failure
        if failure is not None:
            self._stop.set()
            self._report(final=True)
            raise RuntimeError(f"pipeline load failed: {failure.type}: {failure.message} "
                               f"({failure.hint})")
        log.info("replica %s on node %s: ready", self.replica_id, self.node_ip)

    def _report(self, final: bool = False) -> None:
        self.board.report.remote(self.replica_id, self.node_id, self.node_ip,
                                 self.service.state.snapshot(), final)

    def _report_loop(self) -> None:
        while not self._stop.wait(REPORT_EVERY_S):
            try:
                self._report()
            except Exception:
                log.debug("ready report failed", exc_info=True)

    async def generate(self, params: GenerationParams, output_format: str) -> dict:
        """Run one generation; an HTTPProblem comes back as data, not as a Ray error."""
        try:
            outcome = await self.service.run_generation(params, output_format)
        except HTTPProblem as problem:
            return {"problem": {"status": problem.status, "body": problem.body,
                                "headers": problem.headers}}
        return {"images": outcome.images, "seed": outcome.seed,
                "queue_wait_s": outcome.queue_wait_s, "generation_s": outcome.generation_s,
                "replica": self.replica_id, "node_ip": self.node_ip}

    def model_status(self) -> dict:
        return {**self.service.model_status(), "replica": self.replica_id,
                "node_ip": self.node_ip}

    def __del__(self) -> None:  # scaled down or shut down: say goodbye
        with contextlib.suppress(Exception):  # best effort while the process ends
            self._stop.set()
            self._report(final=True)
