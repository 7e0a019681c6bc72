"""`Docker`: runs the argv of `remote.docker_args` on a `Host`.

It adds the prefix (``docker`` or ``sudo -n docker``, detected once per host), runs the command
and turns the engine's error messages into errors a user can act on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.remote.docker_args import (
    DEFAULT_REGISTRY,
    ContainerSpec,
    image_inspect_args,
    inspect_args,
    login_args,
    logs_args,
    ps_args,
    pull_args,
    push_args,
    registry_of,
    rm_args,
    run_args,
    start_args,
    tag_args,
    version_args,
)
from intelligensi_deploy.remote.host import Host, RunResult, Stdin

# --- errors --------------------------------------------------------------------------------


class DockerError(FluxdeployError):
    """A docker command failed; `result` holds what it printed."""

    def __init__(self, message: str, *, result: RunResult | None = None, fix: str | None = None,
                 doc: str | None = None) -> None:
        super().__init__(message, fix=fix, doc=doc)
        self.result = result


class DockerUnavailableError(DockerError):
    """Docker is missing, its daemon is down, or we may not use it."""


class RegistryLoginError(DockerError):
    """``docker login`` to the image registry failed."""


class RegistryAuthError(DockerError):
    """The registry refused the pull: the image is private and we are not logged in."""


class ImageNotFoundError(DockerError):
    """The registry has no such image or tag."""


class GPUUnavailableError(DockerError):
    """Docker could not give the container a GPU."""


def _tail(text: str, lines: int = 5) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _auth_doc(registry: str) -> str:
    return "ghcr-auth" if registry == "ghcr.io" else "registry-auth"


def _credentials_fix(registry: str) -> str:
    if registry == DEFAULT_REGISTRY:
        return (
            "Check the image name. fluxdeploy logs in with GHCR_TOKEN / GHCR_USERNAME only to "
            "ghcr.io or another private registry, never to Docker Hub: use a public Docker Hub "
            "image, or push the image to ghcr.io and set GHCR_TOKEN and GHCR_USERNAME."
        )
    scope = " with the read:packages scope" if registry == "ghcr.io" else ""
    return (
        f"Set GHCR_TOKEN to a token{scope} that may read this image and GHCR_USERNAME to its "
        f"owner's user name, then run again. Check by hand on the host with "
        f"`docker login {registry} -u USER --password-stdin`."
    )


# --- the runner ----------------------------------------------------------------------------


class Docker:
    """Runs docker commands on a host, as ``docker`` or, without socket access, ``sudo -n docker``."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._prefix: list[str] | None = None

    @property
    def prefix(self) -> list[str]:
        """``["docker"]`` or ``["sudo", "-n", "docker"]``, detected on first use."""
        if self._prefix is None:
            self._prefix = self._detect_prefix()
        return self._prefix

    def _detect_prefix(self) -> list[str]:
        plain = self.host.run(["docker", *version_args()], timeout=60)
        if plain.ok:
            return ["docker"]
        if plain.returncode == 127:
            raise DockerUnavailableError(
                f"Docker is not installed on {self.host.label} (`docker` was not found).",
                fix="Install Docker there (Lambda Stack images have it), or use a host that has it.",
                doc="docker-missing",
                result=plain,
            )
        if _permission_denied(plain):
            sudo = self.host.run(["sudo", "-n", "docker", *version_args()], timeout=60)
            if sudo.ok:
                return ["sudo", "-n", "docker"]
            raise DockerUnavailableError(
                f"The user on {self.host.label} may not use Docker: no access to "
                f"/var/run/docker.sock, and `sudo -n docker` failed too "
                f"({_tail(sudo.output, 2)}).",
                fix="Add the user to the docker group (`sudo usermod -aG docker $USER`, then log "
                "in again) or allow it passwordless sudo.",
                doc="docker-permission",
                result=sudo,
            )
        raise DockerUnavailableError(
            f"Docker on {self.host.label} does not answer: {_tail(plain.output, 3)}",
            fix="Start the Docker daemon there (`sudo systemctl start docker`) and check "
            "`docker info`.",
            doc="docker-daemon",
            result=plain,
        )

    def run_docker(
        self,
        args: Sequence[str],
        *,
        stdin: Stdin = None,
        timeout: float | None = None,
        on_output: Callable[[str], None] | None = None,
    ) -> RunResult:
        """Run ``docker ARGS`` (with the detected prefix); returns the result, failed or not."""
        return self.host.run(
            [*self.prefix, *args], stdin=stdin, timeout=timeout, on_output=on_output
        )

    def login(self, registry: str, username: str, token: str) -> None:
        """``docker login`` with the token on stdin; failure raises RegistryLoginError."""
        if not token:
            raise RegistryLoginError(
                f"No token to log in to the container registry {registry} with.",
                fix=_credentials_fix(registry),
                doc=_auth_doc(registry),
            )
        result = self.run_docker(login_args(registry, username), stdin=token.encode(), timeout=120)
        if result.ok:
            return
        detail = _tail(result.output, 3).replace(token, "***")
        raise RegistryLoginError(
            f"Logging in to the container registry {registry} as {username!r} failed on "
            f"{self.host.label}: {detail}",
            fix=_credentials_fix(registry),
            doc=_auth_doc(registry),
            result=result,
        )

    def pull(self, image: str, on_output: Callable[[str], None] | None = None) -> None:
        """``docker pull``, streaming its progress lines; failures are mapped to typed errors."""
        result = self.run_docker(pull_args(image), on_output=on_output)
        if not result.ok:
            raise pull_error(image, result)

    def push(self, image: str, on_output: Callable[[str], None] | None = None) -> None:
        """``docker tag``-ed `image` to its registry, streaming progress; errors are typed."""
        result = self.run_docker(push_args(image), on_output=on_output)
        if not result.ok:
            raise push_error(image, result)

    def tag(self, source: str, target: str) -> None:
        result = self.run_docker(tag_args(source, target), timeout=60)
        if not result.ok:
            raise DockerError(f"`docker tag {source} {target}` failed: {_tail(result.output)}",
                              fix="Check the target reference (REGISTRY/OWNER/NAME:TAG).",
                              result=result)

    def run(self, spec: ContainerSpec) -> str:
        """Start the container of `spec`; returns its id."""
        result = self.run_docker(run_args(spec), timeout=300)
        if result.ok:
            return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        text = result.output
        if "could not select device driver" in text or "nvidia-container-cli" in text:
            raise GPUUnavailableError(
                f"Docker on {self.host.label} could not give {spec.name} a GPU: {_tail(text, 2)}",
                fix="Use a GPU machine with the NVIDIA driver and NVIDIA Container Toolkit "
                "(Lambda Stack has both), or a CPU preset.",
                doc="docker-gpu",
                result=result,
            )
        if "port is already allocated" in text or "address already in use" in text:
            raise DockerError(
                f"Port {spec.port} on {spec.publish_ip} of {self.host.label} is already taken, "
                f"so {spec.name} could not publish it: {_tail(text, 2)}",
                fix="Stop what uses that port (`docker ps`, `ss -ltnp`), or choose another port "
                "in the preset.",
                doc="port-in-use",
                result=result,
            )
        if "is already in use" in text:
            raise DockerError(
                f"A container named {spec.name} already exists on {self.host.label}.",
                fix=f"Remove it first (`docker rm -f {spec.name}`) or deploy under another name.",
                result=result,
            )
        raise DockerError(
            f"`docker run` of {spec.image} as {spec.name} failed on {self.host.label}: "
            f"{_tail(text)}",
            fix="Read the message above; `fluxdeploy doctor` checks the usual causes.",
            doc="docker-run",
            result=result,
        )

    def inspect(self, name: str) -> dict[str, Any] | None:
        """The container's `docker inspect` object, or None when there is no such container."""
        result = self._unless_missing(inspect_args(name), 60, "no such", f"inspect {name}")
        if result is None:
            return None
        data = json.loads(result.stdout or "[]")
        return data[0] if data else None

    def image_exists(self, image: str) -> bool:
        """Whether the host already has `image` (no registry is asked)."""
        found = self._unless_missing(image_inspect_args(image), 60, "no such image",
                                     f"image inspect {image}")
        return found is not None

    def logs(
        self,
        name: str,
        *,
        tail: int | None = None,
        since: str | None = None,
        follow: bool = False,
        timestamps: bool = False,
        on_output: Callable[[str], None] | None = None,
    ) -> str:
        """The container's log lines (stdout and stderr in the order they arrived), joined.

        `on_output` also gets each line as it comes (for ``--follow``). A missing container
        or a failing ``docker logs`` raises DockerError.
        """
        lines: list[str] = []

        def collect(line: str) -> None:
            lines.append(line)
            if on_output is not None:
                on_output(line)

        result = self.run_docker(
            logs_args(name, tail=tail, since=since, follow=follow, timestamps=timestamps),
            on_output=collect,
        )
        if not result.ok:
            missing = "no such container" in result.output.lower()
            raise DockerError(
                f"There is no container {name} on {self.host.label}."
                if missing
                else f"`docker logs {name}` failed on {self.host.label}: {_tail(result.output)}",
                fix="`fluxdeploy status` shows what is deployed." if missing else None,
                result=result,
            )
        return "\n".join(lines) + ("\n" if lines else "")

    def start(self, name: str) -> None:
        """`docker start` a stopped container (its configuration as it was created)."""
        result = self.run_docker(start_args(name), timeout=120)
        if not result.ok:
            raise DockerError(f"`docker start {name}` failed on {self.host.label}: "
                              f"{_tail(result.output)}", result=result,
                              fix="`fluxdeploy up --force` replaces the container.",
                              doc="docker-run")

    def remove(self, name: str) -> bool:
        """Remove the container (force); False when it did not exist."""
        found = self._unless_missing(rm_args(name), 120, "no such container", f"rm -f {name}")
        return found is not None

    def _unless_missing(self, args: Sequence[str], timeout: float, missing: str, shown: str
                        ) -> RunResult | None:
        """Run a command about one object: its result, None when docker's message holds
        `missing` (the object does not exist), or DockerError naming ``docker {shown}``."""
        result = self.run_docker(args, timeout=timeout)
        if result.ok:
            return result
        if missing in result.output.lower():
            return None
        raise DockerError(
            f"`docker {shown}` failed on {self.host.label}: {_tail(result.output)}",
            result=result,
        )

    def ps(self, filters: Mapping[str, str] | Sequence[str] = ()) -> list[dict[str, Any]]:
        """All containers (running or not) matching `filters`, as docker's JSON objects."""
        result = self.run_docker(ps_args(filters), timeout=60)
        if not result.ok:
            raise DockerError(
                f"`docker ps` failed on {self.host.label}: {_tail(result.output)}", result=result
            )
        return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def _permission_denied(result: RunResult) -> bool:
    text = result.output.lower()
    return "permission denied" in text and "docker.sock" in text


def pull_error(image: str, result: RunResult) -> DockerError:
    """The typed error for a failed ``docker pull`` of `image` (pure)."""
    registry = registry_of(image)
    text = result.output
    lowered = text.lower()
    if any(marker in lowered for marker in ("unauthorized", "denied", "no basic auth credentials")):
        maybe_missing = (
            " (Docker Hub also says this when the repository does not exist)"
            if registry == DEFAULT_REGISTRY
            else ""
        )
        return RegistryAuthError(
            f"The registry {registry} refused to let {image} be pulled: the image is private "
            f"and the host is not logged in with credentials that may read it{maybe_missing}. "
            f"Docker said: {_tail(text, 2)}",
            fix=_credentials_fix(registry),
            doc=_auth_doc(registry),
            result=result,
        )
    if "manifest unknown" in lowered or "not found" in lowered:
        return ImageNotFoundError(
            f"The registry {registry} has no image {image}: {_tail(text, 2)}",
            fix="Check the image name and tag in the preset (and that it was pushed).",
            doc="image-not-found",
            result=result,
        )
    return DockerError(
        f"`docker pull {image}` failed: {_tail(text)}",
        fix=f"Check that the host can reach {registry} (network, DNS, disk space).",
        doc="docker-pull",
        result=result,
    )


def push_error(image: str, result: RunResult) -> DockerError:
    """The typed error for a failed ``docker push`` of `image` (pure)."""
    registry = registry_of(image)
    lowered = result.output.lower()
    if any(m in lowered for m in ("unauthorized", "denied", "no basic auth credentials",
                                  "authentication required")):
        return RegistryAuthError(
            f"The registry {registry} refused the push of {image}: {_tail(result.output, 2)}",
            fix=f"export GHCR_TOKEN (a token that may write packages) and GHCR_USERNAME, so "
            f"fluxdeploy logs in to {registry} first.",
            doc=_auth_doc(registry),
            result=result,
        )
    return DockerError(
        f"`docker push {image}` failed: {_tail(result.output)}",
        fix=f"Check that this machine can reach {registry} and that the name is right.",
        doc="docker-pull",
        result=result,
    )
