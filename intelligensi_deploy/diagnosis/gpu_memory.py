"""Who holds the GPU's memory: `nvidia-smi`'s CSV in, lines and stale processes out. Pure.

doctor runs the two queries below on the host (doctor/gpu_memory_check.py) and the host PIDs
of the server's container (`docker top`). A process that holds GPU memory and is not one of
the container's is a stale one (a crashed run's leftover, another user's job): the step of
the seed playbook that used `fuser /dev/nvidia*` and `lsof`. When the log shows a CUDA out of
memory, the `cuda-oom` finding names it first: freeing it is the fix, not a smaller preset.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from intelligensi_deploy.diagnosis.findings import Finding

GPU_QUERY: tuple[str, ...] = (
    "nvidia-smi", "--query-gpu=index,name,memory.used,memory.total,utilization.gpu",
    "--format=csv")
APPS_QUERY: tuple[str, ...] = (
    "nvidia-smi", "--query-compute-apps=pid,process_name,used_memory", "--format=csv")

_NUMBER = re.compile(r"^\s*(\d+)")


@dataclass(frozen=True)
class Gpu:
    index: str
    name: str
    used_mib: int | None
    total_mib: int | None
    utilization_pct: int | None

    def line(self) -> str:
        used = "?" if self.used_mib is None else str(self.used_mib)
        total = "?" if self.total_mib is None else str(self.total_mib)
        busy = "" if self.utilization_pct is None else f", {self.utilization_pct}% busy"
        return f"GPU {self.index} {self.name}: {used} of {total} MiB used{busy}"


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    name: str
    used_mib: int | None

    def stale_line(self) -> str:
        held = "?" if self.used_mib is None else str(self.used_mib)
        return (f"pid {self.pid} ({self.name}) holds {held} MiB of GPU memory and is not the "
                "server's container: a stale process")


def _rows(text: str) -> list[list[str]]:
    """CSV rows without the header line nvidia-smi prints first (`--format=csv`)."""
    rows = [[cell.strip() for cell in line.split(",")] for line in text.splitlines()
            if line.strip()]
    if rows and not _NUMBER.match(rows[0][0]):
        rows = rows[1:]
    return rows


def _number(cell: str) -> int | None:
    """`20480 MiB`, `35 %`, `20480` -> the number; `[N/A]`, `[Not Supported]` -> None."""
    match = _NUMBER.match(cell)
    return int(match.group(1)) if match else None


def parse_gpus(text: str) -> list[Gpu]:
    """The rows of `GPU_QUERY`'s output."""
    gpus = []
    for row in _rows(text):
        if len(row) >= 5:
            # a name may hold a comma; the last three cells are the numbers
            name = ", ".join(row[1:-3])
            gpus.append(Gpu(row[0], name, _number(row[-3]), _number(row[-2]),
                            _number(row[-1])))
    return gpus


def parse_processes(text: str) -> list[GpuProcess]:
    """The rows of `APPS_QUERY`'s output."""
    processes = []
    for row in _rows(text):
        pid = _number(row[0]) if row else None
        if pid is not None and len(row) >= 3:
            processes.append(GpuProcess(pid, ", ".join(row[1:-1]), _number(row[-1])))
    return processes


def container_pids(docker_top: str) -> set[int]:
    """The host PIDs in `docker top NAME -eo pid` output (header `PID`)."""
    return {int(line.strip()) for line in docker_top.splitlines() if line.strip().isdigit()}


def stale_processes(processes: Iterable[GpuProcess], ours: set[int]) -> list[GpuProcess]:
    """Processes holding GPU memory that are not the server container's, most memory first."""
    stale = [p for p in processes if p.pid not in ours and (p.used_mib is None or p.used_mib)]
    return sorted(stale, key=lambda p: -(p.used_mib or 0))


def stop_fix(stale: Sequence[GpuProcess]) -> str:
    pids = " ".join(str(p.pid) for p in stale)
    return (f"Free the GPU: on the host, `ps -o pid,user,etime,cmd -p {pids}` shows what it "
            f"is; stop it (`sudo kill {pids}`), then `fluxdeploy up` again (it resumes).")


def point_oom_at(findings: Sequence[Finding], stale: Sequence[GpuProcess]) -> list[Finding]:
    """`findings` with each cuda-oom naming the stale processes first (evidence and fix)."""
    if not stale:
        return list(findings)
    lines = tuple(p.stale_line() for p in stale)
    return [Finding(f.id, f.severity, f"{f.title}; another process holds GPU memory",
                    lines + f.evidence, f"{stop_fix(stale)} Otherwise: {f.fix}", f.doc)
            if f.id == "cuda-oom" else f for f in findings]
