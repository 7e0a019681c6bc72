"""`fluxdeploy ssh` and `fluxdeploy exec`: the operator's shell on the deployment's machine
and in its server container (cli_shell.py parses; this module decides and runs).

`ssh` reaches the VM as `up` did: the preset's user and key, the pinned host key (a changed
key is refused), node 1 of a cluster unless `--node` says otherwise. A command is a shell
command line on the VM, its words joined by spaces as `ssh` joins them. `exec` is
`docker exec` in the server container there (on this machine for provider local), a shell
when no command is given. Nothing secret is ever put in either command line: the container
has its environment already.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from intelligensi_deploy import names
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.machines import connect_node, connect_ssh, require_running
from intelligensi_deploy.remote.docker import Docker
from intelligensi_deploy.remote.host_protocol import Host
from intelligensi_deploy.remote.interactive import run_session
from intelligensi_deploy.remote.local_host import LocalHost
from intelligensi_deploy.remote.ssh_host import SSHHost
from intelligensi_deploy.shell_lines import image_shell_line
from intelligensi_deploy.state import Deployment

# bash where the image has it (the server image does), sh where it does not
_BASH_OR_SH = "if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi"
DEFAULT_SHELL = ("sh", "-c", _BASH_OR_SH)


def node_index(dep: Deployment, node: int | None) -> int:
    """The node to reach: `node`, default 1 (the head, or the one VM); an unknown one is an
    error that names the nodes there are."""
    if node is None or node == 1:
        return 1
    if not dep.is_cluster:
        raise FluxdeployError(
            f"Deployment {dep.name!r} runs on one VM: it has no node {node}.",
            fix="Leave out --node (or give --node 1).")
    dep.node(node)  # StateError naming the nodes
    return node


def ssh_host(dep: Deployment, node: int | None) -> SSHHost:
    """The SSH host of node `node` of a running deployment, with its pinned host key."""
    index = node_index(dep, node)
    if dep.provider == "local":
        raise FluxdeployError(
            f"Deployment {dep.name!r} runs on this machine (provider local): there is no VM "
            "to reach over SSH.",
            fix=f"`fluxdeploy exec --name {dep.name}` opens a shell in its container.")
    require_running(dep)
    if dep.is_cluster:
        return connect_node(dep, dep.node(index))
    return connect_ssh(dep)


def container_of(dep: Deployment, node: int | None) -> str:
    index = node_index(dep, node)
    if dep.is_cluster:
        return dep.node(index).container_name or names.node_name(dep.name, index)
    return dep.container_name or f"fluxdeploy-{dep.name}"


def ssh_line(command: Sequence[str]) -> str | None:
    """The command line run on the VM (as `ssh` joins its words); None: a login shell."""
    return " ".join(command) if command else None


def exec_argv(prefix: Sequence[str], container: str, command: Sequence[str], *,
              tty: bool) -> list[str]:
    """`docker exec -i [-t] CONTAINER CMD...` (a shell without a command)."""
    return [*prefix, "exec", "-i", *(["-t"] if tty else []), container,
            *(command or DEFAULT_SHELL)]


def require_container_running(dep: Deployment, docker: Docker, container: str) -> None:
    """An error with the next step when the container is missing or not running."""
    inspect = docker.inspect(container)
    state: dict[str, Any] = (inspect or {}).get("State") or {}
    if inspect is not None and state.get("Running") and not state.get("Restarting"):
        return
    image = str(((inspect or {}).get("Config") or {}).get("Image") or dep.image or "IMAGE")
    if inspect is None:
        what = f"there is no container {container}"
    elif state.get("Restarting"):
        what = f"container {container} keeps restarting (exit code {state.get('ExitCode')})"
    else:
        what = (f"container {container} is not running (status {state.get('Status', '?')}, "
                f"exit code {state.get('ExitCode')})")
    raise FluxdeployError(
        f"Cannot exec into deployment {dep.name!r}: {what}.",
        fix=f"`fluxdeploy logs --name {dep.name}` shows why; `fluxdeploy up` starts it. To "
            f"look inside the image instead: `{image_shell_line(dep.name, dep.provider, image)}`.",
        doc="container-shell")


def open_ssh(dep: Deployment, node: int | None, command: Sequence[str]) -> int:
    """`fluxdeploy ssh`: the session's exit status."""
    host = ssh_host(dep, node)
    try:
        return run_session(host, ssh_line(command))
    finally:
        host.close()


def open_exec(dep: Deployment, node: int | None, command: Sequence[str]) -> int:
    """`fluxdeploy exec`: a command or a shell in the server container; its exit status."""
    container = container_of(dep, node)
    if dep.provider == "local":
        require_running(dep)
        host: Host = LocalHost()
    else:
        host = ssh_host(dep, node)
    try:
        docker = Docker(host)
        require_container_running(dep, docker, container)
        if isinstance(host, SSHHost):
            tty = sys.stdin.isatty()
            line = shlex.join(exec_argv(docker.prefix, container, command, tty=tty))
            return run_session(host, line, tty=tty)
        argv = exec_argv(docker.prefix, container, command, tty=sys.stdin.isatty())
        return subprocess.call(argv)  # the terminal passes straight through
    finally:
        host.close()
