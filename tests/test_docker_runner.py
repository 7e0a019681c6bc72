"""The Docker runner over LocalHost and over SSH (a real sshd), with a fake `docker` on PATH.

The fake records every call (argv, stdin, whether it came through `sudo -n`) and plays the
Docker engine's failures, word for word, as told by flag files in its state folder.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from intelligensi_deploy.remote.docker import (
    Docker,
    DockerError,
    DockerUnavailableError,
    GPUUnavailableError,
    ImageNotFoundError,
    RegistryAuthError,
    RegistryLoginError,
)
from intelligensi_deploy.remote.docker_args import ContainerSpec, run_args
from intelligensi_deploy.remote.host import Host, LocalHost, SSHHost
from tests.fixtures.sshd import SSHServer

TOKEN = "ghp_FakeGhcrToken0123456789abcdefABCDEF"
HF_SECRET = "hf_FakeHuggingFaceToken0123456789abcd"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

FAKE_DOCKER = r'''#!{python}
"""A stand-in for the docker CLI: records the call, then answers like the engine would."""
import json, os, sys, time

STATE = {state!r}
args = sys.argv[1:]
stdin = sys.stdin.read()
via_sudo = os.environ.get("FAKE_VIA_SUDO") == "1"
with open(os.path.join(STATE, "calls.jsonl"), "a") as log:
    log.write(json.dumps({{"argv": args, "stdin": stdin, "via_sudo": via_sudo}}) + "\n")

def flag(name):
    path = os.path.join(STATE, name)
    return open(path).read().strip() if os.path.exists(path) else None

def fail(message, code=1):
    sys.stderr.write(message + "\n")
    sys.exit(code)

if flag("daemon_down") is not None:
    fail("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
         "Is the docker daemon running?")
if flag("socket_denied") is not None and not via_sudo:
    fail("permission denied while trying to connect to the Docker daemon socket at "
         "unix:///var/run/docker.sock: Get \"http://%2Fvar%2Frun%2Fdocker.sock/v1.24/version\": "
         "dial unix /var/run/docker.sock: connect: permission denied")

command = args[0]
containers = json.loads(flag("containers.json") or "{{}}")
if command == "version":
    print("24.0.7")
elif command == "login":
    registry = args[1]
    if stdin == flag("valid_token"):
        print("Login Succeeded")
    else:
        fail(f'Error response from daemon: Get "https://{{registry}}/v2/": denied: denied')
elif command == "pull":
    image = args[1]
    mode = flag("pull") or "ok"
    if mode == "ok":
        for line in ("1.0: Pulling from acme/flux", "a1b2: Pulling fs layer",
                     "a1b2: Downloading  12.5MB/50MB", "a1b2: Pull complete",
                     "Status: Downloaded newer image for " + image):
            print(line, flush=True)
    elif mode == "unauthorized":
        fail(f'Error response from daemon: Head "https://ghcr.io/v2/acme/flux/manifests/1.0": '
             "unauthorized")
    elif mode == "denied":
        fail("Error response from daemon: denied: denied")
    elif mode == "noauth":
        fail(f'Error response from daemon: Get "http://localhost:5000/v2/flux/manifests/1": '
             "no basic auth credentials")
    elif mode == "notfound":
        fail(f"Error response from daemon: manifest for {{image}} not found: manifest unknown")
    else:
        fail("Error response from daemon: Get https://ghcr.io/v2/: dial tcp: lookup ghcr.io: "
             "no such host")
elif command == "run":
    if flag("port_taken") is not None:
        fail("docker: Error response from daemon: driver failed programming external "
             "connectivity on endpoint x: Bind for 127.0.0.1:8000 failed: port is already "
             "allocated.", 125)
    if "--gpus" in args and flag("no_gpu") is not None:
        fail("docker: Error response from daemon: could not select device driver \"\" with "
             "capabilities: [[gpu]].", 125)
    print("3f2a9c" + "0" * 58)
elif command == "inspect":
    name = args[-1]
    if name not in containers:
        fail(f"Error: No such container: {{name}}")
    print(json.dumps([containers[name]]))
elif command == "rm":
    name = args[-1]
    if name not in containers:
        fail(f"Error response from daemon: No such container: {{name}}")
    print(name)
elif command == "ps":
    for name, info in containers.items():
        print(json.dumps({{"Names": name, "State": info["State"]["Status"]}}))
elif command == "image" and args[1] == "inspect":
    image = args[-1]
    if image not in (flag("images") or "").split():
        fail(f"Error response from daemon: No such image: {{image}}")
    print("sha256:" + "ab" * 32)
elif command == "logs":
    name = args[-1]
    if name not in containers:
        fail(f"Error response from daemon: No such container: {{name}}")
    print("INFO: loading model", flush=True)
    sys.stderr.write("WARNING: slow disk\n")
    sys.stderr.flush()
    time.sleep(0.2)
    print("INFO: ready", flush=True)
else:
    fail(f"fake docker: unknown command {{command}}", 2)
'''

FAKE_SUDO = r"""#!{python}
import os, sys

STATE = {state!r}
if sys.argv[1:2] != ["-n"]:
    sys.exit("fake sudo: only -n is supported")
if os.path.exists(os.path.join(STATE, "sudo_denied")):
    sys.stderr.write("sudo: a password is required\n")
    sys.exit(1)
os.environ["FAKE_VIA_SUDO"] = "1"
os.execvp(sys.argv[2], sys.argv[2:])
"""


@dataclass
class FakeDocker:
    """The fake's state folder and bin folder, with helpers to steer it and read its log."""

    state: Path
    bin: Path

    def set(self, flag: str, value: str = "") -> None:
        (self.state / flag).write_text(value)

    def calls(self) -> list[dict]:
        path = self.state / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def argvs(self, command: str | None = None) -> list[list[str]]:
        return [c["argv"] for c in self.calls() if command is None or c["argv"][0] == command]


def install_fake_docker(root: Path) -> FakeDocker:
    state, bin_dir = root / "state", root / "bin"
    state.mkdir(parents=True)
    bin_dir.mkdir()
    for name, template in (("docker", FAKE_DOCKER), ("sudo", FAKE_SUDO)):
        script = bin_dir / name
        script.write_text(template.format(python=sys.executable, state=str(state)))
        script.chmod(0o755)
    return FakeDocker(state, bin_dir)


@dataclass
class Setup:
    host: Host
    fake: FakeDocker
    sshd: SSHServer | None
    use_path: object  # callable(path: str) -> None: sets PATH for the host's commands


@pytest.fixture(params=["local", "ssh"])
def setup(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Setup]:
    fake = install_fake_docker(tmp_path / "fake")
    if request.param == "local":

        def use_local_path(path: str) -> None:
            monkeypatch.setenv("PATH", path)

        use_local_path(f"{fake.bin}:{SYSTEM_PATH}")
        yield Setup(LocalHost(), fake, None, use_local_path)
        return
    with SSHServer(tmp_path / "sshd") as server:

        def use_ssh_path(path: str) -> None:
            server.set_session_env(PATH=path)

        use_ssh_path(f"{fake.bin}:{SYSTEM_PATH}")
        with SSHHost(server.host, **server.host_kwargs()) as remote:  # type: ignore[arg-type]
            yield Setup(remote, fake, server, use_ssh_path)


def commands_seen_by_host(setup: Setup) -> list[str]:
    """What reached the host as command text (SSH) or as argv (local)."""
    if setup.sshd is not None:
        return setup.sshd.commands()
    return [" ".join(argv) for argv in setup.fake.argvs()]


# --- docker or sudo -n docker --------------------------------------------------------------


def test_plain_docker_when_the_socket_is_usable(setup: Setup) -> None:
    docker = Docker(setup.host)
    assert docker.prefix == ["docker"]
    docker.ps()
    docker.ps()
    assert setup.fake.argvs("version") == [["version", "--format", "{{.Server.Version}}"]]
    assert not any(call["via_sudo"] for call in setup.fake.calls())


def test_falls_back_to_sudo_without_socket_access(setup: Setup) -> None:
    setup.fake.set("socket_denied")
    docker = Docker(setup.host)
    assert docker.prefix == ["sudo", "-n", "docker"]
    docker.pull("ghcr.io/acme/flux:1.0")
    pulls = [c for c in setup.fake.calls() if c["argv"][0] == "pull"]
    assert len(pulls) == 1 and pulls[0]["via_sudo"]
    assert len(setup.fake.argvs("version")) == 2  # plain, then through sudo; then never again


def test_neither_docker_nor_sudo_is_a_clear_error(setup: Setup) -> None:
    setup.fake.set("socket_denied")
    setup.fake.set("sudo_denied")
    with pytest.raises(DockerUnavailableError) as caught:
        Docker(setup.host).ps()
    text = str(caught.value)
    assert "docker group" in text and "sudo" in text and "docker.sock" in text
    assert "password is required" in text


def test_daemon_down_is_reported_as_such(setup: Setup) -> None:
    setup.fake.set("daemon_down")
    with pytest.raises(DockerUnavailableError, match="Is the docker daemon running"):
        Docker(setup.host).ps()


def test_docker_not_installed(setup: Setup, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    setup.use_path(str(empty))  # type: ignore[operator]
    with pytest.raises(DockerUnavailableError, match="not installed"):
        Docker(setup.host).ps()


# --- login ---------------------------------------------------------------------------------


def test_login_sends_the_token_on_stdin_only(setup: Setup) -> None:
    setup.fake.set("valid_token", TOKEN)
    Docker(setup.host).login("ghcr.io", "octocat", TOKEN)
    (login,) = [c for c in setup.fake.calls() if c["argv"][0] == "login"]
    assert login["argv"] == ["login", "ghcr.io", "-u", "octocat", "--password-stdin"]
    assert login["stdin"] == TOKEN
    assert not any(TOKEN in command for command in commands_seen_by_host(setup))


def test_login_through_sudo_still_uses_stdin(setup: Setup) -> None:
    setup.fake.set("socket_denied")
    setup.fake.set("valid_token", TOKEN)
    Docker(setup.host).login("ghcr.io", "octocat", TOKEN)
    (login,) = [c for c in setup.fake.calls() if c["argv"][0] == "login"]
    assert login["via_sudo"] and login["stdin"] == TOKEN
    assert not any(TOKEN in command for command in commands_seen_by_host(setup))


def test_login_failure_is_a_registry_error_not_a_hugging_face_one(setup: Setup) -> None:
    setup.fake.set("valid_token", "another-token")
    with pytest.raises(RegistryLoginError) as caught:
        Docker(setup.host).login("ghcr.io", "octocat", TOKEN)
    text = str(caught.value)
    assert "ghcr.io" in text and "octocat" in text
    assert "GHCR_TOKEN" in text and "GHCR_USERNAME" in text and "read:packages" in text
    assert "denied" in text  # the registry's own words
    assert caught.value.doc == "ghcr-auth"
    assert "hugging" not in text.lower() and "HF_" not in text
    assert TOKEN not in text


def test_login_without_token_fails_before_running_anything(setup: Setup) -> None:
    with pytest.raises(RegistryLoginError, match="No token"):
        Docker(setup.host).login("ghcr.io", "octocat", "")
    assert setup.fake.argvs("login") == []


# --- pull ----------------------------------------------------------------------------------


def test_pull_streams_progress_lines(setup: Setup) -> None:
    lines: list[str] = []
    Docker(setup.host).pull("ghcr.io/acme/flux:1.0", on_output=lines.append)
    assert lines[0] == "1.0: Pulling from acme/flux"
    assert "a1b2: Downloading  12.5MB/50MB" in lines
    assert lines[-1] == "Status: Downloaded newer image for ghcr.io/acme/flux:1.0"
    assert setup.fake.argvs("pull") == [["pull", "ghcr.io/acme/flux:1.0"]]


@pytest.mark.parametrize("mode", ["unauthorized", "denied", "noauth"])
def test_pull_refused_is_a_registry_auth_error(setup: Setup, mode: str) -> None:
    setup.fake.set("pull", mode)
    with pytest.raises(RegistryAuthError) as caught:
        Docker(setup.host).pull("ghcr.io/acme/flux:1.0")
    text = str(caught.value)
    assert "ghcr.io" in text and "GHCR_TOKEN" in text
    assert "hugging" not in text.lower()


def test_pull_of_a_missing_tag_is_image_not_found(setup: Setup) -> None:
    setup.fake.set("pull", "notfound")
    with pytest.raises(ImageNotFoundError, match="ghcr.io/acme/flux:9.9"):
        Docker(setup.host).pull("ghcr.io/acme/flux:9.9")


def test_pull_network_failure_is_generic(setup: Setup) -> None:
    setup.fake.set("pull", "network")
    with pytest.raises(DockerError, match="no such host") as caught:
        Docker(setup.host).pull("ghcr.io/acme/flux:1.0")
    assert type(caught.value) is DockerError


# --- containers ----------------------------------------------------------------------------


def server_spec(**overrides: object) -> ContainerSpec:
    values: dict[str, object] = {
        "name": "fluxdeploy-demo",
        "image": "ghcr.io/acme/flux:1.0",
        "port": 8000,
        "env": {"FLUX_MODEL": "tiny"},
        "env_file": "/root/.fluxdeploy/demo.env",
        "labels": {"fluxdeploy.deployment": "demo"},
    }
    values.update(overrides)
    return ContainerSpec(**values)  # type: ignore[arg-type]


def test_run_returns_the_container_id_and_keeps_secrets_out(setup: Setup, tmp_path: Path) -> None:
    env_file = str(tmp_path / "demo.env")
    setup.host.write_file(env_file, f"HF_TOKEN={HF_SECRET}\n".encode())
    spec = server_spec(env_file=env_file)
    container_id = Docker(setup.host).run(spec)
    assert container_id == "3f2a9c" + "0" * 58
    assert setup.fake.argvs("run") == [run_args(spec)]
    assert not any(HF_SECRET in command for command in commands_seen_by_host(setup))


def test_run_with_gpus_on_a_host_without_gpu(setup: Setup) -> None:
    setup.fake.set("no_gpu")
    with pytest.raises(GPUUnavailableError, match="NVIDIA Container Toolkit"):
        Docker(setup.host).run(server_spec(gpus=True))


def test_run_on_a_taken_port(setup: Setup) -> None:
    setup.fake.set("port_taken")
    with pytest.raises(DockerError, match="already taken") as caught:
        Docker(setup.host).run(server_spec())
    assert caught.value.doc == "port-in-use"


def test_inspect_existing_and_missing(setup: Setup) -> None:
    info = {"Name": "/fluxdeploy-demo", "State": {"Status": "running", "Running": True}}
    setup.fake.set("containers.json", json.dumps({"fluxdeploy-demo": info}))
    docker = Docker(setup.host)
    assert docker.inspect("fluxdeploy-demo") == info
    assert docker.inspect("fluxdeploy-other") is None


def test_remove_existing_and_missing(setup: Setup) -> None:
    info = {"State": {"Status": "exited"}}
    setup.fake.set("containers.json", json.dumps({"fluxdeploy-demo": info}))
    docker = Docker(setup.host)
    assert docker.remove("fluxdeploy-demo") is True
    assert docker.remove("fluxdeploy-gone") is False
    assert setup.fake.argvs("rm") == [
        ["rm", "-f", "fluxdeploy-demo"],
        ["rm", "-f", "fluxdeploy-gone"],
    ]


def test_ps_parses_json_lines(setup: Setup) -> None:
    containers = {
        "fluxdeploy-a": {"State": {"Status": "running"}},
        "fluxdeploy-b": {"State": {"Status": "exited"}},
    }
    setup.fake.set("containers.json", json.dumps(containers))
    rows = Docker(setup.host).ps({"label": "fluxdeploy.deployment"})
    assert rows == [
        {"Names": "fluxdeploy-a", "State": "running"},
        {"Names": "fluxdeploy-b", "State": "exited"},
    ]
    assert setup.fake.argvs("ps")[-1][-2:] == ["--filter", "label=fluxdeploy.deployment"]


def test_logs_streams_both_outputs_in_arrival_order(setup: Setup) -> None:
    setup.fake.set("containers.json", json.dumps({"fluxdeploy-demo": {"State": {}}}))
    lines: list[str] = []
    text = Docker(setup.host).logs("fluxdeploy-demo", tail=50, on_output=lines.append)
    assert sorted(lines[:2]) == ["INFO: loading model", "WARNING: slow disk"]
    assert lines[2] == "INFO: ready"
    assert text == "\n".join(lines) + "\n"
    assert setup.fake.argvs("logs") == [["logs", "--tail", "50", "fluxdeploy-demo"]]


def test_logs_of_a_missing_container(setup: Setup) -> None:
    with pytest.raises(DockerError, match="no container fluxdeploy-gone"):
        Docker(setup.host).logs("fluxdeploy-gone")


def test_image_exists(setup: Setup) -> None:
    setup.fake.set("images", "ghcr.io/acme/flux:1.0")
    docker = Docker(setup.host)
    assert docker.image_exists("ghcr.io/acme/flux:1.0") is True
    assert docker.image_exists("ghcr.io/acme/flux:2.0") is False
