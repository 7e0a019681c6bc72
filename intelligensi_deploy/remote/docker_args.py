"""Docker commands as pure argv builders: the arguments AFTER "docker" (``["run", "-d",
...]``), touching nothing (`remote.docker.Docker` runs them on a host).

Secrets never enter argv: `run_args` refuses a secret-looking `-e NAME=value`; the registry
token goes to ``docker login --password-stdin`` on stdin, and container secrets through an
``--env-file`` written with `Host.write_file`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from intelligensi_deploy.errors import FluxdeployError

DEFAULT_REGISTRY = "docker.io"
GRACE_VAR = "FLUX_SHUTDOWN_GRACE_S"  # the server's drain on SIGTERM (docs/contract.md)
DEFAULT_GRACE_S = 10.0  # the server's default for it
STOP_MARGIN_S = 5  # beyond the grace: uvicorn's own 2 s, and the answer on its way

_SECRET_WORDS = {"TOKEN", "SECRET", "PASSWORD", "PASSWD", "APIKEY", "CREDENTIALS"}
_SECRET_SUFFIXES = ("API_KEY", "PRIVATE_KEY", "ACCESS_KEY")


def looks_secret(name: str) -> bool:
    """Whether an environment variable name looks like it holds a secret (HF_TOKEN: yes,
    TOKENIZERS_PARALLELISM: no)."""
    upper = name.upper()
    return bool(_SECRET_WORDS & set(re.split(r"[^A-Z0-9]+", upper))) or upper.endswith(
        _SECRET_SUFFIXES
    )


class SecretInArgvError(FluxdeployError, ValueError):
    """A secret-looking variable was about to be put on a `docker run` command line."""


# --- pure builders -------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerSpec:
    """How to run the server container. `env` is for non-secret values only."""

    name: str
    image: str
    port: int
    container_port: int = 8000
    publish_ip: str = "127.0.0.1"  # "0.0.0.0" for exposure public
    env: Mapping[str, str] = field(default_factory=dict)
    env_file: str | None = None  # path on the host of a 0600 file holding the secrets
    gpus: bool = False
    volumes: Sequence[tuple[str, str]] = ()  # (host path, container path)
    labels: Mapping[str, str] = field(default_factory=dict)
    restart: str = "unless-stopped"


def stop_timeout(env: Mapping[str, str]) -> int:
    """Seconds `docker stop` waits before SIGKILL: the server's grace period (the preset's
    FLUX_SHUTDOWN_GRACE_S, else its default) plus STOP_MARGIN_S, so a generation the server
    lets finish on SIGTERM is not killed by Docker's default 10 s."""
    raw = str(env.get(GRACE_VAR, "")).strip()
    try:
        grace = float(raw) if raw else DEFAULT_GRACE_S
    except ValueError:
        grace = DEFAULT_GRACE_S  # the server refuses it and says so in /ready
    return math.ceil(max(grace, 0.0)) + STOP_MARGIN_S


def run_args(spec: ContainerSpec) -> list[str]:
    """``docker run -d`` for `spec`; refuses (SecretInArgvError) secret-looking `env` names."""
    secret_names = sorted(name for name in spec.env if looks_secret(name))
    if secret_names:
        raise SecretInArgvError(
            f"{', '.join(secret_names)} look(s) like a secret and would be visible on the "
            "host's command line (`ps`) if passed to the container with -e.",
            fix="Remove it from the preset's env: secrets such as HF_TOKEN are read from your "
            "environment and reach the container through a 0600 env file.",
            doc="secrets",
        )
    args = ["run", "-d", "--name", spec.name, "--restart", spec.restart]
    args += ["--stop-timeout", str(stop_timeout(spec.env))]
    args += ["-p", f"{_publish_address(spec.publish_ip)}:{spec.port}:{spec.container_port}"]
    if spec.gpus:
        args += ["--gpus", "all"]
    if spec.env_file:
        args += ["--env-file", spec.env_file]
    for name, value in spec.env.items():
        args += ["-e", f"{name}={value}"]
    for source, target in spec.volumes:
        args += ["-v", f"{source}:{target}"]
    for name, value in spec.labels.items():
        args += ["--label", f"{name}={value}"]
    args.append(spec.image)
    return args


def _publish_address(ip: str) -> str:
    return f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip


def login_args(registry: str, username: str) -> list[str]:
    """``docker login``; the password is read from stdin, never argv."""
    return ["login", registry, "-u", username, "--password-stdin"]


def version_args() -> list[str]:
    """Asks the engine (not only the client) for its version: fails without socket access."""
    return ["version", "--format", "{{.Server.Version}}"]


def image_inspect_args(image: str) -> list[str]:
    return ["image", "inspect", "--format", "{{.Id}}", image]


def pull_args(image: str) -> list[str]:
    return ["pull", image]


def tag_args(source: str, target: str) -> list[str]:
    return ["tag", source, target]


def push_args(image: str) -> list[str]:
    return ["push", image]


def inspect_args(name: str) -> list[str]:
    return ["inspect", "--type", "container", name]


def logs_args(
    name: str,
    tail: int | None = None,
    since: str | None = None,
    follow: bool = False,
    timestamps: bool = False,
) -> list[str]:
    """``docker logs``; `since` is what docker accepts ("10m", an RFC 3339 time...)."""
    args = ["logs"]
    if tail is not None:
        args += ["--tail", str(tail)]
    if since:
        args += ["--since", since]
    if follow:
        args.append("--follow")
    if timestamps:
        args.append("--timestamps")
    return [*args, name]


def start_args(name: str) -> list[str]:
    """`docker start NAME`: a stopped container, as it was created."""
    return ["start", name]


def rm_args(name: str, force: bool = True) -> list[str]:
    return ["rm", "-f", name] if force else ["rm", name]


def ps_args(filters: Mapping[str, str] | Sequence[str] = (), all: bool = True) -> list[str]:
    """``docker ps`` with one JSON object per line; filters like {"label": "a=b"} or "name=x"."""
    items = (
        [f"{key}={value}" for key, value in filters.items()]
        if isinstance(filters, Mapping)
        else list(filters)
    )
    args = ["ps", "--no-trunc", "--format", "{{json .}}"]
    if all:
        args.append("-a")
    for item in items:
        args += ["--filter", item]
    return args


def registry_of(image: str) -> str:
    """The registry host of an image reference, by Docker's rules ("docker.io" by default)."""
    first, slash, _ = image.partition("/")
    if not slash:
        return DEFAULT_REGISTRY
    if "." in first or ":" in first or first == "localhost":
        return "docker.io" if first in ("index.docker.io", "registry-1.docker.io") else first
    return DEFAULT_REGISTRY


def image_needs_login(image: str, have_credentials: bool) -> bool:
    """Log in before pulling when registry credentials are given and the image is not on
    Docker Hub (GHCR_TOKEN is for ghcr.io or a private registry, never for Docker Hub)."""
    return have_credentials and registry_of(image) != DEFAULT_REGISTRY
