"""doctor's `gpu` check through a real SSH host (the test sshd "VM"), with stand-ins for
`nvidia-smi` (no GPU here) and `docker` first on the VM's PATH, as tests/test_signals.py does.

The stand-in nvidia-smi answers the three queries doctor sends in nvidia-smi's own CSV
format; `docker top` names the server container's host PIDs. A process outside them that
holds 20 GB is the stale process the seed playbook looked for with fuser and lsof.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from intelligensi_deploy.state import Deployment, StateStore
from tests.fixtures.ports import free_port
from tests.fixtures.sshd import SSHServer

REPO = Path(__file__).resolve().parents[1]

NVIDIA_SMI = """#!/bin/sh
# nvidia-smi on the test VM: one A10; the apps listed in $FAKE_GPU_APPS
case "$*" in
  -L) echo "GPU 0: NVIDIA A10 (UUID: GPU-8e137fa6-c3d9-6980-7733-0d8df296756e)" ;;
  --query-gpu=index,name,memory.used,memory.total,utilization.gpu\\ --format=csv)
    echo "index, name, memory.used [MiB], memory.total [MiB], utilization.gpu [%]"
    echo "0, NVIDIA A10, $FAKE_GPU_USED MiB, 23028 MiB, 0 %" ;;
  --query-compute-apps=pid,process_name,used_memory\\ --format=csv)
    echo "pid, process_name, used_gpu_memory [MiB]"
    printf "$FAKE_GPU_APPS" ;;
  *) echo "nvidia-smi: unexpected arguments: $*" >&2; exit 2 ;;
esac
"""

DOCKER = """#!/bin/sh
# docker on the test VM: the server container runs as host PID 2001 and its child 2002
case "$1" in
  version) echo 27.3.1 ;;
  info) echo '{"ServerVersion": "27.3.1", "Runtimes": {"runc": {}, "nvidia": {}}}' ;;
  inspect) cat "$FAKE_INSPECT" ;;
  top) printf "PID\\n2001\\n2002\\n" ;;
  logs) cat "$FAKE_LOG" ;;
  *) exit 0 ;;
esac
"""

OOM_LOG = """\
INFO:     flux_server.loader: loading model=black-forest-labs/FLUX.1-schnell
Traceback (most recent call last):
  File "/app/flux_server/loader.py", line 88, in load
    pipe.to("cuda")
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 90.00 MiB. GPU 0 has a total \
capacity of 22.49 GiB of which 17.06 MiB is free.
"""

HEALTHY_LOG = "INFO:     flux_server.loader: model ready: model=x strategy=gpu dtype=bf16\n"


def inspect_running() -> list[dict[str, object]]:
    return [{"Name": "/fluxdeploy-vm", "RestartCount": 0,
             "State": {"Status": "running", "Running": True, "Restarting": False,
                       "OOMKilled": False, "ExitCode": 0, "Error": "",
                       "StartedAt": "2026-12-03T12:00:00Z"},
             "HostConfig": {"PortBindings": {}}, "Config": {"Labels": {}}}]


def doctor(tmp_path: Path, sshd: SSHServer, *, apps: str, used: int, log: str) -> str:
    """`fluxdeploy doctor` on a recorded ssh deployment of the test VM; its text output."""
    bin_dir = tmp_path / "vm-bin"
    bin_dir.mkdir()
    for name, script in (("nvidia-smi", NVIDIA_SMI), ("docker", DOCKER)):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "inspect.json").write_text(json.dumps(inspect_running()))
    (tmp_path / "container.log").write_text(log)
    sshd.set_session_env(PATH=f"{bin_dir}:/usr/bin:/bin", FAKE_GPU_APPS=apps,
                         FAKE_GPU_USED=str(used), FAKE_INSPECT=str(tmp_path / "inspect.json"),
                         FAKE_LOG=str(tmp_path / "container.log"))
    preset = tmp_path / "vm.yaml"
    preset.write_text(
        f"provider: ssh\nssh: {{host: {sshd.host}, port: {sshd.port}, user: {sshd.user}, "
        f"key_path: {sshd.client_key_path}}}\nimage: localhost:5000/flux:1\n"
        f"port: {free_port()}\ngpus: true\n")
    home = tmp_path / "home"
    StateStore(home).save(Deployment(
        name="vm", preset=str(preset), provider="ssh", phase="ready", ip=sshd.host,
        ssh_port=sshd.port, ssh_user=sshd.user, ssh_key_path=str(sshd.client_key_path),
        host_key=sshd.host_public_key, container_name="fluxdeploy-vm",
        image="localhost:5000/flux:1"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLUXDEPLOY_", "HF_", "GHCR_", "LAMBDA_"))}
    env.update(FLUXDEPLOY_HOME=str(home), COLUMNS="200", NO_COLOR="1")
    done = subprocess.run([sys.executable, "-m", "intelligensi_deploy", "doctor", "--name",
                           "vm"], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)
    return done.stdout + done.stderr


@pytest.mark.timeout(150)
def test_a_stale_process_holding_20_gb_is_named_and_the_oom_points_at_it(
        tmp_path: Path, sshd: SSHServer) -> None:
    apps = "2002, /opt/venv/bin/python, 1210 MiB\\n4242, /usr/bin/python3, 20480 MiB\\n"
    out = doctor(tmp_path, sshd, apps=apps, used=21690, log=OOM_LOG)
    print(out)  # the report's GPU section, for the record
    assert "GPU memory is held by a process outside the container" in out
    assert "GPU 0 NVIDIA A10: 21690 of 23028 MiB used, 0% busy" in out
    assert "the server's container holds 1210 MiB (pid 2002)" in out
    assert "pid 4242 (/usr/bin/python3) holds 20480 MiB of GPU memory" in out
    assert "sudo kill 4242" in out
    # the log's CUDA out of memory names the stale process as the first thing to fix
    oom = out[out.index("cuda-oom"):]
    assert "another process holds GPU memory" in oom
    assert "pid 4242" in oom


@pytest.mark.timeout(150)
def test_a_healthy_gpu_shows_its_memory_and_names_no_one(
        tmp_path: Path, sshd: SSHServer) -> None:
    out = doctor(tmp_path, sshd, apps="2001, /opt/venv/bin/python, 14820 MiB\\n", used=15120,
                 log=HEALTHY_LOG)
    assert "GPU visible to containers" in out
    assert "GPU 0 NVIDIA A10: 15120 of 23028 MiB used, 0% busy" in out
    assert "the server's container holds 14820 MiB (pid 2001)" in out
    assert "stale" not in out and "sudo kill" not in out
