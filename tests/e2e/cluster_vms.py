"""Three "VMs" for the scale-out end-to-end tests, each its own network namespace.

A VM here is a sandbox container (`sleep infinity` on the offline base image) with its own
address on a Docker network made for the test session; a real sshd runs in the sandbox's
network namespace (nsenter), so `fluxdeploy` reaches each VM at its own address, as it would
three Lambda instances. The VMs share this machine's Docker engine and file system (one image
store, one home folder), as three VMs of one image would look alike.

What a VM's "host network" is: its sandbox's namespace. Each VM's sessions get a `docker` on
their PATH that turns `--network host` into `--network container:<sandbox>` and passes
everything else to the real docker, so a node container started with `--network host` (as on
Lambda) binds the VM's own address: Ray's ports on three nodes never collide, and a
`--network host` container on VM 2 is not reachable on VM 1's loopback.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures.docker_env import SESSION_ID, SESSION_LABEL, TEST_LABEL, docker
from tests.fixtures.sshd import SSHServer

NETWORK = f"fluxdeploy-e2e-vms-{SESSION_ID}"

_SHIM = """#!/bin/bash
# This VM's host network is its sandbox's network namespace (tests/e2e/cluster_vms.py).
args=()
prev=""
for a in "$@"; do
  if [ "$prev" = "--network" ] && [ "$a" = "host" ]; then a="container:{sandbox}"; fi
  if [ "$a" = "--network=host" ]; then a="--network=container:{sandbox}"; fi
  args+=("$a")
  prev="$a"
done
exec {docker} "${{args[@]}}"
"""


@dataclass
class VM:
    """One VM: its index (1 = the head's), address, sandbox container and sshd."""

    index: int
    ip: str
    sandbox: str
    sshd: SSHServer

    def pid(self) -> int:
        return int(docker("inspect", "-f", "{{.State.Pid}}", self.sandbox).stdout.strip())


def _routed_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network this machine routes (/proc/net/route: no iproute2 needed)."""
    found = []
    for line in Path("/proc/net/route").read_text().splitlines()[1:]:
        fields = line.split()
        dest, mask = (ipaddress.IPv4Address(bytes.fromhex(f)[::-1]) for f in (fields[1], fields[7]))
        found.append(ipaddress.IPv4Network(f"{dest}/{mask}", strict=False))
    return found


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 that no route of this machine (so no Docker network) overlaps."""
    used = [n for n in _routed_networks() if n.prefixlen > 0]
    for third in range(90, 250):
        net = ipaddress.IPv4Network(f"172.31.{third}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError("no free 172.31.x.0/24 for the test VMs")


def start_vms(workdir: Path, count: int, image: str) -> tuple[list[VM], ipaddress.IPv4Network]:
    """`count` VMs on a new Docker network; sshd answering on each one's address."""
    subnet = _free_subnet()
    docker("network", "create", "--subnet", str(subnet), "--label", f"{TEST_LABEL}=1",
           "--label", f"{SESSION_LABEL}={SESSION_ID}", NETWORK)
    real_docker = shutil.which("docker") or "/usr/bin/docker"
    vms: list[VM] = []
    try:
        for index in range(1, count + 1):
            ip = str(subnet.network_address + 10 + index)
            sandbox = f"fluxdeploy-e2e-vm{index}-{SESSION_ID}"
            docker("run", "-d", "--name", sandbox, "--network", NETWORK, "--ip", ip,
                   "--label", f"{TEST_LABEL}=1", "--label", f"{SESSION_LABEL}={SESSION_ID}",
                   image, "sleep", "infinity")
            pid = int(docker("inspect", "-f", "{{.State.Pid}}", sandbox).stdout.strip())
            folder = workdir / f"vm{index}"
            bin_dir = folder / "bin"
            bin_dir.mkdir(parents=True)
            shim = bin_dir / "docker"
            shim.write_text(_SHIM.format(sandbox=sandbox, docker=real_docker))
            shim.chmod(0o755)
            server = SSHServer(folder / "sshd", listen_addresses=(ip,), port=22,
                               netns_pid=pid)
            server.set_session_env(PATH=f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
            server.start()
            vms.append(VM(index, ip, sandbox, server))
    except BaseException:
        stop_vms(vms)
        raise
    return vms, subnet


def stop_vms(vms: list[VM]) -> None:
    for vm in vms:
        vm.sshd.stop()
        docker("rm", "-f", vm.sandbox, check=False)
    docker("network", "rm", NETWORK, check=False)


def vms_fixture(workdir: Path, count: int, image: str) -> Iterator[list[VM]]:
    vms, _ = start_vms(workdir, count, image)
    try:
        yield vms
    finally:
        stop_vms(vms)
