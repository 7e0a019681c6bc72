"""nvidia-smi's CSV (the format of `--format=csv`: a header with units, values with units)
read into GPU lines and stale processes, and the cuda-oom finding pointed at them."""

from __future__ import annotations

from intelligensi_deploy.diagnosis.findings import make_finding
from intelligensi_deploy.diagnosis.gpu_memory import (
    container_pids,
    parse_gpus,
    parse_processes,
    point_oom_at,
    stale_processes,
)

GPUS = """\
index, name, memory.used [MiB], memory.total [MiB], utilization.gpu [%]
0, NVIDIA H100 80GB HBM3, 61234 MiB, 81559 MiB, 97 %
1, NVIDIA H100 80GB HBM3, 4 MiB, 81559 MiB, [N/A]
"""
APPS = """\
pid, process_name, used_gpu_memory [MiB]
2001, /opt/venv/bin/python, 40960 MiB
4242, python3, 20270 MiB
5151, /usr/bin/Xorg, [N/A]
6000, idle, 0 MiB
"""


def test_each_gpu_becomes_one_line_with_its_memory_and_load() -> None:
    lines = [g.line() for g in parse_gpus(GPUS)]
    assert lines == ["GPU 0 NVIDIA H100 80GB HBM3: 61234 of 81559 MiB used, 97% busy",
                     "GPU 1 NVIDIA H100 80GB HBM3: 4 of 81559 MiB used"]


def test_processes_outside_the_container_holding_memory_are_stale_biggest_first() -> None:
    ours = container_pids("PID\n2001\n2002\n")
    stale = stale_processes(parse_processes(APPS), ours)
    assert [p.pid for p in stale] == [4242, 5151]  # 0 MiB is not held; [N/A] may be
    assert stale[0].stale_line().startswith("pid 4242 (python3) holds 20270 MiB")


def test_no_header_and_no_processes_read_as_nothing() -> None:
    assert parse_processes("pid, process_name, used_gpu_memory [MiB]\n") == []
    assert parse_gpus("") == []
    assert container_pids("Error: No such container: fluxdeploy-x") == set()


def test_cuda_oom_names_the_stale_process_first_and_others_are_untouched() -> None:
    stale = stale_processes(parse_processes(APPS), {2001})
    oom = make_finding("cuda-oom", ["torch.OutOfMemoryError: CUDA out of memory."])
    crash = make_finding("container-crash", ["KeyError: 'x'"])
    pointed, same = point_oom_at([oom, crash], stale)
    assert pointed.evidence[0].startswith("pid 4242") and "sudo kill 4242 5151" in pointed.fix
    assert pointed.evidence[-1] == "torch.OutOfMemoryError: CUDA out of memory."
    assert same == crash
    assert point_oom_at([oom], []) == [oom]
