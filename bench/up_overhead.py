"""Benchmark: what `fluxdeploy up` costs over doing the same steps by hand.

On the test harness (a real sshd on 127.0.0.1 as the VM, the local Docker engine, the server
image already built, the tiny model), it times N rounds of:

- by hand: `ssh` in, `docker run -d ...` the server, then a curl loop on `/ready`;
- `fluxdeploy up --preset <ssh preset>` until ready;

and prints the medians and their ratio (target <= 1.3), then the median time of
`fluxdeploy doctor` on the healthy deployment. Run: `.venv/bin/python bench/up_overhead.py [N]`
(needs `make image` first).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.docker_env import SERVER_IMAGE, free_port
from tests.fixtures.sshd import SSHServer

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3


def by_hand(vm: SSHServer, port: int) -> float:
    ssh = ["ssh", "-i", str(vm.client_key_path), "-p", str(vm.port), "-o",
           "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o",
           "LogLevel=ERROR", f"{vm.user}@127.0.0.1"]
    start = time.perf_counter()
    subprocess.run([*ssh, "docker", "run", "-d", "--name", "bench-by-hand", "-p",
                    f"127.0.0.1:{port}:8000", "-e", "FLUX_MODEL=tiny", "-e", "FLUX_MEMORY=cpu",
                    "-e", "FLUX_DTYPE=fp32", SERVER_IMAGE], check=True, capture_output=True)
    while subprocess.run(["curl", "-sf", "-o", "/dev/null", f"http://127.0.0.1:{port}/ready"],
                         check=False).returncode != 0:
        time.sleep(0.5)
    elapsed = time.perf_counter() - start
    subprocess.run(["docker", "rm", "-f", "bench-by-hand"], check=True, capture_output=True)
    return elapsed


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, SSHServer(Path(tmp) / "vm") as vm:
        port = free_port()
        preset = Path(tmp) / "bench.yaml"
        preset.write_text(
            f"provider: ssh\nssh: {{host: 127.0.0.1, user: {vm.user}, port: {vm.port}, "
            f"key_path: {vm.client_key_path}}}\nimage: {SERVER_IMAGE}\npull: if-missing\n"
            "server: {model: tiny, memory: cpu, dtype: fp32}\ngpus: false\n"
            f"port: {port}\nready_timeout: 300\n"
        )
        env = {**os.environ, "FLUXDEPLOY_HOME": str(Path(tmp) / "home")}
        cli = [sys.executable, "-m", "intelligensi_deploy"]
        hand, tool, doctor = [], [], []
        for _ in range(ROUNDS):
            hand.append(by_hand(vm, port))
            tool.append(timed([*cli, "up", "--preset", str(preset)], env))
            doctor.append(timed([*cli, "doctor"], env))
            timed([*cli, "down"], env)
        h, t = statistics.median(hand), statistics.median(tool)
        print(f"rounds: {ROUNDS} (tiny model, image present, sshd on 127.0.0.1)")
        print(f"by hand (ssh + docker run + curl loop on /ready): median {h:6.2f} s  {hand}")
        print(f"fluxdeploy up to ready:                         median {t:6.2f} s")
        print(f"ratio up / by hand: {t / h:.2f} (target <= 1.3)")
        print(f"fluxdeploy doctor on the healthy deployment:    median "
              f"{statistics.median(doctor):6.2f} s")


if __name__ == "__main__":
    main()
