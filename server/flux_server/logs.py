"""Logging set-up: one redacting stderr handler per process, and a replica's own Serve log.

Below both entry points (flux_server.main, the uvicorn process, and flux_server.replica, a
Ray Serve replica) so that neither imports the other."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable
from logging.handlers import MemoryHandler

from flux_server.redact import RedactingFilter

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(token: str | None,
                  sources: Iterable[Callable[[], Iterable[str]]] = ()) -> None:
    """One stderr handler on the root logger; every record passes the redacting filter
    (`sources`: secrets that change at run time, such as the API keys)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RedactingFilter([token], sources))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("FLUX_LOG_LEVEL", "INFO").upper())


def log_into_replica_file(token: str | None) -> None:
    """Send our `flux_server` lines to this replica's own Serve log file as well (the file
    `fluxdeploy logs --replica` prints), through the same redacting filter as stderr.

    Serve writes only its `ray.serve` logger there; everything else goes to the Ray worker's
    stderr file, where nothing names the replica."""
    ours = logging.getLogger("flux_server")
    for handler in logging.getLogger("ray.serve").handlers:
        if isinstance(handler, MemoryHandler) and handler not in ours.handlers:
            handler.addFilter(RedactingFilter([token]))  # Serve's own lines pass it too
            ours.addHandler(handler)
