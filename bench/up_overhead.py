"""Benchmark: what `fluxdeploy up` costs over doing the same steps by hand.

On the test harness (a real sshd on 127.0.0.1 as the VM, the local Docker engine, the server
image already built, the tiny model), it times N rounds of:

- by hand: `ssh` in, `docker run -d ...` the server, then a curl loop on `/ready`;
- `fluxdeploy up --preset <ssh preset>` until ready;

and prints the medians and their ratio (target <= 1.3), then the median time of
`fluxdeploy doctor` on the healthy deployment.

Then the same for `image: bundled` on a warm host (the content-hash tag already built there):

- by hand: `ssh` in, `docker image inspect TAG` (is it there?), `docker run -d ... TAG`, the
  curl loop;
- `fluxdeploy up` with `image: bundled` (hashing the context, finding the tag, no build),
  and a second `up` right after (nothing to do): both times are printed.

Run: `.venv/bin/python bench/up_overhead.py [N]` (needs `make image` first).
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

from tests.fixtures.docker_env import BASE_IMAGE, SERVER_IMAGE, free_port
from tests.fixtures.sshd import SSHServer

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3


def ssh_argv(vm: SSHServer) -> list[str]:
    return ["ssh", "-i", str(vm.client_key_path), "-p", str(vm.port), "-o",
            "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o",
            "LogLevel=ERROR", f"{vm.user}@127.0.0.1"]


def by_hand(vm: SSHServer, port: int, image: str = SERVER_IMAGE, check_image: bool = False
            ) -> float:
    ssh = ssh_argv(vm)
    start = time.perf_counter()
    if check_image:  # the bundled path's first step: is the tag already on the host?
        subprocess.run([*ssh, "docker", "image", "inspect", "--format", "{{.Id}}", image],
                       check=True, capture_output=True)
    subprocess.run([*ssh, "docker", "run", "-d", "--name", "bench-by-hand", "-p",
                    f"127.0.0.1:{port}:8000", "-e", "FLUX_MODEL=tiny", "-e", "FLUX_MEMORY=cpu",
                    "-e", "FLUX_DTYPE=fp32", image], check=True, capture_output=True)
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


def bundled_env() -> dict[str, str]:
    """The offline build overrides `make demo` uses (server/.build-extra from `make image`)."""
    extra = REPO / "server" / ".build-extra"
    wheels = sorted((extra / "wheels").glob("torch-*.whl"))
    torch = f"torch=={wheels[0].name.split('-')[1]}" if wheels else "torch==2.13.0"
    return {"FLUXDEPLOY_BUILD_BASE_IMAGE": BASE_IMAGE, "FLUXDEPLOY_BUILD_TORCH": torch,
            "FLUXDEPLOY_BUILD_TORCH_INDEX": "", "FLUXDEPLOY_BUILD_EXTRAS": "",
            "FLUXDEPLOY_BUILD_EXTRA_DIR": str(extra)}


def bundled_case(vm: SSHServer, tmp: Path, cli: list[str]) -> None:
    port = free_port()
    preset = tmp / "bench-bundled.yaml"
    preset.write_text(
        f"provider: ssh\nssh: {{host: 127.0.0.1, user: {vm.user}, port: {vm.port}, "
        f"key_path: {vm.client_key_path}}}\nimage: bundled\n"
        "server: {model: tiny, memory: cpu, dtype: fp32}\ngpus: false\n"
        f"port: {port}\nready_timeout: 300\n"
    )
    env = {**os.environ, **bundled_env(), "FLUXDEPLOY_HOME": str(tmp / "home-bundled")}
    # Warm the host: build the tag once (not timed; a no-op when it is there already).
    warm = subprocess.run([*cli, "image", "build", "--preset", str(preset)], env=env,
                          check=True, capture_output=True, text=True)
    tag = warm.stdout.strip().splitlines()[-1]
    hand, first, second = [], [], []
    for _ in range(ROUNDS):
        hand.append(by_hand(vm, port, tag, check_image=True))
        first.append(timed([*cli, "up", "--preset", str(preset)], env))
        second.append(timed([*cli, "up", "--preset", str(preset)], env))
        timed([*cli, "down"], env)
    h, f, s = (statistics.median(x) for x in (hand, first, second))
    print(f"\nimage: bundled, warm host ({tag} present), rounds: {ROUNDS}")
    print(f"by hand (ssh + image inspect + docker run + curl loop): median {h:6.2f} s")
    print(f"fluxdeploy up, first (hash, tag found, run, ready):  median {f:6.2f} s  "
          f"{[round(x, 2) for x in first]}")
    print(f"fluxdeploy up, second (nothing to do):              median {s:6.2f} s  "
          f"{[round(x, 2) for x in second]}")
    print(f"ratio first up / by hand: {f / h:.2f} (target <= 1.3)")


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
        bundled_case(vm, Path(tmp), cli)


if __name__ == "__main__":
    main()
