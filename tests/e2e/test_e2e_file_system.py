"""End to end: the weights outlive the VM on a Lambda file system.

`file_system: auto` makes `up` create `fluxdeploy-fsdemo` in the launch region and mount it; the
"VM" (the sshd harness) sees it where Lambda mounts one, /lambda/nfs/<name>, a host folder
that two VMs in turn share, as Lambda's NFS is shared. The first VM downloads the weights into
it; `down` keeps it; the second VM loads them without one request for a weight file. The file
system pins the region: with no capacity there, `up` offers the choices, and `up --wait`
launches once capacity comes back. `down --delete-file-system` removes it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import E2E, INSTANCE_TYPE, REGION, interrupt

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

NAME = "fsdemo"  # a deployment of its own: no other test's "e2e" container can meet it
MOUNT = Path(f"/lambda/nfs/fluxdeploy-{NAME}")
SERVER_UID = 1000  # the server image's user, who owns Lambda's mount on a real VM (ubuntu)


def _check(result: subprocess.CompletedProcess[str], code: int = 0) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    return output


@pytest.fixture
def mount() -> Iterator[Path]:
    """The file system as a VM sees it: Lambda's mount point, writable by the VM's user."""
    if os.geteuid() != 0:
        pytest.skip("creating /lambda/nfs (Lambda's mount point) needs root here")
    shutil.rmtree(MOUNT, ignore_errors=True)
    (MOUNT / "huggingface").mkdir(parents=True)
    for path in (MOUNT, MOUNT / "huggingface"):
        os.chown(path, SERVER_UID, SERVER_UID)
    yield MOUNT
    shutil.rmtree(MOUNT, ignore_errors=True)


def _weight_downloads(e2e: E2E, since: int) -> int:
    return len([r for r in e2e.hub.requests[since:]
                if r.method == "GET" and "/resolve/" in r.path and r.status in (200, 206)
                and r.path.endswith(".safetensors")])


def test_the_second_vm_loads_the_weights_from_the_file_system_without_downloading(
        e2e: E2E, mount: Path) -> None:
    preset = e2e.preset(**{"lambda": {"file_system": "auto"}})
    marker = len(e2e.hub.requests)
    first = _check(e2e.cli("up", "--preset", str(preset), "--name", NAME))
    fs = next(iter(e2e.lam.file_systems.values()))
    assert fs["name"] == f"fluxdeploy-{NAME}" and fs["region"]["name"] == REGION
    assert e2e.state(NAME)["file_system"] == f"fluxdeploy-{NAME}"
    downloaded = _weight_downloads(e2e, marker)
    assert downloaded > 0, "the first VM downloads the weights"
    assert list((mount / "huggingface").rglob("*.safetensors")), "weights on the file system"
    launch = e2e.lam.calls("POST", "/instance-operations/launch")[-1]
    assert launch.body["file_system_names"] == [f"fluxdeploy-{NAME}"]
    line = next(x for x in first.splitlines() if "Time to ready" in x)
    assert "launch + boot" in line and "image pulled" in line and "download 0 bytes" not in line
    print(f"\nfirst up: {downloaded} weight files downloaded\n{line.strip()}")

    down = _check(e2e.cli("down", "--name", NAME))
    assert f"file system fluxdeploy-{NAME} kept" in down
    assert e2e.lam.file_systems, "down keeps the file system"

    marker = len(e2e.hub.requests)
    second = _check(e2e.cli("up", "--preset", str(preset), "--name", NAME))
    assert e2e.launches() == 2 and "created file system" not in second.lower()
    assert _weight_downloads(e2e, marker) == 0, "the second VM downloaded weights again"
    line = next(x for x in second.splitlines() if "Time to ready" in x)
    assert "download 0 bytes (all from the file system fluxdeploy-fsdemo)" in line, line
    print(f"second up: 0 weight files downloaded\n{line.strip()}")
    status = json.loads(_check(e2e.cli("status", "--name", NAME, "--json")))["deployments"][0]
    assert status["time_to_ready"] == line.strip()
    assert status["timeline"]["bytes_downloaded"] == 0
    listed = json.loads(_check(e2e.cli("fs", "list", "--json")))["file_systems"]
    assert [(f["name"], f["region"], f["deployment"], f["mounted"]) for f in listed] == [
        (f"fluxdeploy-{NAME}", REGION, NAME, True)]
    _check(e2e.cli("down", "--name", NAME))

    assert e2e.containers(NAME) == [], "down left the container running"

    # the file system pins the region: no capacity there -> the choices, then --wait
    e2e.lam.capacity[INSTANCE_TYPE] = ["us-west-1"]
    refused = e2e.cli("up", "--preset", str(preset), "--name", NAME)
    said = refused.stdout + refused.stderr
    assert refused.returncode == 1, said
    assert "pins the launch to us-east-1" in said and "--wait" in said and "file_system" in said
    e2e.env["FLUXDEPLOY_CAPACITY_POLL_S"] = "1"
    waiting = e2e.spawn("up", "--preset", str(preset), "--name", NAME, "--wait")
    seen: list[str] = []
    try:
        assert waiting.stdout is not None
        for line in waiting.stdout:  # until it says it waits for the pinned region
            seen.append(line)
            if "asking again in 1 s (--wait" in line:
                break
        assert e2e.launches() == 2, "--wait launched outside the file system's region"
        e2e.lam.capacity[INSTANCE_TYPE] = [REGION]  # capacity comes back there
        rest, _ = waiting.communicate(timeout=400)
    finally:
        if waiting.poll() is None:
            interrupt(waiting)
    out = "".join(seen) + rest
    assert waiting.returncode == 0, out
    assert "pins the launch to us-east-1" in out
    assert e2e.launches() == 3 and e2e.state(NAME)["region"] == REGION

    gone = _check(e2e.cli("down", "--name", NAME, "--delete-file-system"))
    assert f"Deleted file system fluxdeploy-{NAME}" in gone
    assert e2e.lam.file_systems == {}

