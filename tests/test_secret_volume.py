"""The server's secrets volume on a real Docker engine: the file is 0600, owned by the
image's user (who can read it), unreadable by any other uid, replaced atomically, and the
volume goes with `remove_volume`. The body travels on stdin only."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from intelligensi_deploy.remote.docker import Docker
from intelligensi_deploy.remote.local_host import LocalHost
from intelligensi_deploy.remote.secret_volume import image_user, remove_volume, write_secret
from tests.fixtures.docker_env import (  # noqa: F401  (pytest fixtures, imported by name)
    docker,
    docker_engine,
    server_image,
)

pytestmark = pytest.mark.docker
KEY = "fxk_" + "s" * 43


@pytest.fixture
def volume(docker_engine: object) -> Iterator[str]:  # noqa: F811
    name = f"fluxdeploy-test-{uuid.uuid4().hex[:8]}-secrets"
    yield name
    docker("volume", "rm", "-f", name, check=False)


def _in_volume(image: str, volume: str, script: str, user: str | None = None) -> str:
    args = ["run", "--rm", "--network", "none", "-v", f"{volume}:/run/fluxdeploy:ro"]
    if user:
        args += ["--user", user]
    result = docker(*args, "--entrypoint", "sh", image, "-c", script, check=False)
    return (result.stdout + result.stderr).strip()


def test_the_image_user_reads_its_0600_key_and_no_other_uid_can(server_image: str,  # noqa: F811
                                                                 volume: str) -> None:
    engine = Docker(LocalHost())
    assert image_user(engine, server_image) == "1000"  # server/Dockerfile's APP_UID
    write_secret(engine, server_image, volume, "api-keys", f"{KEY}\n".encode())
    assert _in_volume(server_image, volume, "stat -c '%u %a' /run/fluxdeploy/api-keys") \
        == "1000 600"
    assert _in_volume(server_image, volume, "cat /run/fluxdeploy/api-keys") == KEY
    other = _in_volume(server_image, volume, "cat /run/fluxdeploy/api-keys", user="1234")
    assert "Permission denied" in other and KEY not in other
    # a second write replaces it whole (the server re-reads the file when it changes)
    write_secret(engine, server_image, volume, "api-keys", b"fxk_" + b"n" * 43 + b"\n")
    assert _in_volume(server_image, volume, "ls -a /run/fluxdeploy") == ".\n..\napi-keys"
    assert _in_volume(server_image, volume, "cat /run/fluxdeploy/api-keys") == "fxk_" + "n" * 43
    remove_volume(engine, volume)
    remove_volume(engine, volume)  # gone already: no error
    assert docker("volume", "ls", "-q", "--filter", f"name={volume}").stdout.strip() == ""


def test_a_path_is_not_a_file_name(server_image: str, volume: str) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="not a plain file name"):
        write_secret(Docker(LocalHost()), server_image, volume, "../etc/passwd", b"x")
