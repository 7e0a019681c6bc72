"""`fluxdeploy ssh --node N` and `exec --node N` on the 3-VM harness (tests/e2e/cluster_vms.py):
three network namespaces, each with its own address and its own sshd and host key, as three
Lambda instances would be. A recorded cluster deployment names them; no Ray is started here
(what is tested is reaching the right machine, with that machine's pinned key)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from intelligensi_deploy.state import Deployment, NodeRecord, StateStore
from tests.e2e.cluster_vms import VM, vms_fixture
from tests.fixtures.docker_env import BASE_IMAGE, docker, ensure_base_image, ensure_engine

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.timeout(600)]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def vms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[VM]]:
    ensure_engine()
    for vms in vms_fixture(tmp_path_factory.mktemp("shell-vms"), 3, ensure_base_image()):
        for vm in vms[1:]:  # one deployment key, as on Lambda: the head's
            vm.sshd.authorize(vms[0].sshd.client_public_key)
        yield vms


def save(home: Path, vms: list[VM], name: str, keys: dict[int, str] | None = None) -> None:
    keys = keys or {vm.index: vm.sshd.host_public_key for vm in vms}
    nodes = [NodeRecord(index=vm.index, name=f"{name}-node{vm.index}", ip=vm.ip,
                        host_key=keys[vm.index], container_name=f"fluxdeploy-{name}-node{vm.index}")
             for vm in vms]
    head = vms[0].sshd
    StateStore(home).save(Deployment(
        name=name, preset="lambda-cluster", provider="lambda", phase="ready",
        instance_id="i-1", ip=vms[0].ip, ssh_port=22, ssh_user=head.user,
        ssh_key_path=str(head.client_key_path), host_key=keys[1],
        container_name=nodes[0].container_name, nodes=nodes))


def fluxdeploy(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLUXDEPLOY_", "HF_", "GHCR_", "LAMBDA_"))}
    env.update(FLUXDEPLOY_HOME=str(home), COLUMNS="200", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "intelligensi_deploy", *args], env=env,
                          cwd=REPO, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=120, check=False)


def test_ssh_node_2_reaches_the_second_vm(tmp_path: Path, vms: list[VM]) -> None:
    name = f"shell-{uuid.uuid4().hex[:6]}"
    save(tmp_path, vms, name)
    for vm in vms:
        done = fluxdeploy(tmp_path, "ssh", "--name", name, "--node", str(vm.index), "--",
                          'echo "$SSH_CONNECTION"')
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[2] == vm.ip  # the address that session reached
    head = fluxdeploy(tmp_path, "ssh", "--name", name, "--", 'echo "$SSH_CONNECTION"')
    assert head.stdout.split()[2] == vms[0].ip  # no --node: the head


def test_each_node_has_its_own_pinned_key(tmp_path: Path, vms: list[VM]) -> None:
    name = f"shell-{uuid.uuid4().hex[:6]}"
    keys = {vm.index: vm.sshd.host_public_key for vm in vms}
    keys[3] = keys[2]  # node 3 recorded with node 2's key: VM 3 answers with another
    save(tmp_path, vms, name, keys)
    done = fluxdeploy(tmp_path, "ssh", "--name", name, "--node", "3", "--", "echo", "reached")
    assert done.returncode == 1 and "reached" not in done.stdout
    assert "host key" in done.stderr.lower()
    assert fluxdeploy(tmp_path, "ssh", "--name", name, "--node", "2", "--", "true"
                      ).returncode == 0


def test_exec_node_2_runs_in_node_2s_container(tmp_path: Path, vms: list[VM]) -> None:
    name = f"shell-{uuid.uuid4().hex[:6]}"
    save(tmp_path, vms, name)
    container = f"fluxdeploy-{name}-node2"
    docker("run", "-d", "--name", container, BASE_IMAGE, "sleep", "600")
    try:
        done = fluxdeploy(tmp_path, "exec", "--name", name, "--node", "2", "--", "sh", "-c",
                          "echo in-$(hostname)")
        assert done.returncode == 0, done.stderr
        hostname = docker("inspect", "-f", "{{.Config.Hostname}}", container).stdout.strip()
        assert done.stdout.strip() == f"in-{hostname}"
        assert any(container in c for c in vms[1].sshd.commands())  # through VM 2's sshd
        assert not any(container in c for c in vms[0].sshd.commands())
    finally:
        docker("rm", "-f", container, check=False)
