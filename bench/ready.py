"""Waiting for a benchmarked server's `/ready`: the one helper the bench scripts share.

It is the CLI's own wait (`intelligensi_deploy.health.wait_ready`, polled through
`fetch_ready`), so a bench waits exactly as `fluxdeploy up` does: a `failed` server stops the
wait at once with its reason, and a server process that exits is reported, not waited on.
"""

from __future__ import annotations

import subprocess

from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.health import ReadyStatus, fetch_ready
from intelligensi_deploy.health import wait_ready as wait_until_ready


def wait_ready(url: str, timeout: float, *, proc: subprocess.Popen | None = None,
               interval: float = 0.5) -> None:
    """Poll `{url}/ready` every `interval` s until it is ready; SystemExit with the reason
    when the server failed, when `proc` (the server process) exits, or after `timeout` s."""

    def probe() -> ReadyStatus:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        return fetch_ready(url)

    try:
        wait_until_ready(probe, timeout, interval=interval, quick=interval)
    except FluxdeployError as exc:
        raise SystemExit(f"{url}: {exc}") from None
