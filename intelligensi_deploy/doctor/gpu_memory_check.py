"""The GPU's memory as doctor's `gpu` check shows it: two read-only `nvidia-smi` queries and
`docker top` of the server's container, through the host (diagnosis/gpu_memory.py reads
them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from intelligensi_deploy.diagnosis.gpu_memory import (
    APPS_QUERY,
    GPU_QUERY,
    GpuProcess,
    container_pids,
    parse_gpus,
    parse_processes,
    stale_processes,
)

if TYPE_CHECKING:
    from intelligensi_deploy.doctor.check_types import DockerLike
    from intelligensi_deploy.remote.host_protocol import Host


@dataclass(frozen=True)
class GpuMemory:
    """A line per GPU, lines on who holds memory, and the processes outside the container."""

    gpus: list[str] = field(default_factory=list)
    processes: list[str] = field(default_factory=list)
    stale: list[GpuProcess] = field(default_factory=list)


def read_gpu_memory(host: Host, docker: DockerLike, container: str) -> GpuMemory:
    """Query the host; a query that fails leaves its part out (the `-L` check judged the
    driver already)."""
    gpus = host.run(list(GPU_QUERY), timeout=30)
    lines = [g.line() for g in parse_gpus(gpus.stdout)] if gpus.ok else []
    apps = host.run(list(APPS_QUERY), timeout=30)
    if not apps.ok:
        return GpuMemory(lines)
    top = docker.run_docker(["top", container, "-eo", "pid"], timeout=30)
    ours = container_pids(top.stdout) if getattr(top, "ok", False) else set()
    processes = parse_processes(apps.stdout)
    stale = stale_processes(processes, ours)
    held = [p for p in processes if p.pid in ours]
    pids = ", ".join(str(p.pid) for p in held)
    total = sum(p.used_mib or 0 for p in held)
    mine = [f"the server's container holds {total} MiB (pid {pids})"] if held else []
    return GpuMemory(lines, [*mine, *(p.stale_line() for p in stale)], stale)
