"""`fluxdeploy cache verify / clear`: the deployment's HF cache checked on its host.

The check runs where the cache is, in the deployment's own image: a throwaway container
(`docker run --rm --network none`) mounts the server container's /data/hf (a Docker volume,
a host path or a Lambda file system) and runs `python -m flux_server.cache_check`, which
checks every safetensors file against its header and lists `.incomplete` files
(server/flux_server/cache_check.py, the same check the server makes after each download).
Read-only for `verify`; `clear` removes what is broken (and the compile cache with
`--compiled`). The argv and the report's reading are pure; `check_cache` runs them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.remote.docker import Docker
from intelligensi_deploy.remote.host import Host

HF_MOUNT = "/data/hf"  # where container_plan mounts the HF cache in the server container
CHECK_TIMEOUT = 600.0


class CacheCheckError(FluxdeployError):
    """The cache could not be checked (no container to take the mount from, docker failed)."""


@dataclass(frozen=True)
class CacheMount:
    """The server container's image and what it mounts at /data/hf (volume name or path)."""

    image: str
    source: str


def cache_mount(inspected: Mapping[str, Any]) -> CacheMount | None:
    """The image and /data/hf mount of a `docker inspect` container object (None: no mount)."""
    image = str(inspected.get("Config", {}).get("Image") or inspected.get("Image") or "")
    for mount in inspected.get("Mounts") or []:
        if mount.get("Destination") == HF_MOUNT:
            source = mount.get("Name") if mount.get("Type") == "volume" else mount.get("Source")
            if image and source:
                return CacheMount(image, str(source))
    return None


def check_args(mount: CacheMount, *, clear: bool = False, compiled: bool = False) -> list[str]:
    """`docker run` argv of the check in the server's image (read-only unless clearing)."""
    volume = f"{mount.source}:{HF_MOUNT}" + ("" if clear else ":ro")
    flags = ["--clear", *(["--compiled"] if compiled else [])] if clear else []
    return ["run", "--rm", "--network", "none", "-v", volume, mount.image,
            "python", "-m", "flux_server.cache_check", HF_MOUNT, *flags]


def parse_report(stdout: str) -> dict[str, Any]:
    """The check's JSON report (its last stdout line)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise CacheCheckError("The cache check printed nothing.",
                              fix="Run `fluxdeploy doctor` to see whether the host's "
                              "Docker and the image work.")
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def broken_count(report: Mapping[str, Any]) -> int:
    """Broken safetensors files plus `.incomplete` files, over every model."""
    return sum(len(m["broken"]) + len(m["incomplete"]) for m in report["models"])


def report_lines(report: Mapping[str, Any]) -> list[str]:
    """What a person reads: one line per model, one per broken file, then what was removed."""
    lines = []
    for model in report["models"]:
        bad = len(model["broken"]) + len(model["incomplete"])
        lines.append(f"{model['repo']}: {'ok' if not bad else f'{bad} broken'} "
                     f"({model['snapshots']} snapshot(s), {model['folder']})")
        lines += [f"  cache-corrupt: {b['path']}: {b['problem']}" for b in model["broken"]]
        lines += [f"  cache-corrupt: {i['path']}: left by an interrupted download "
                  f"({i['bytes']} bytes)" for i in model["incomplete"]]
    if not report["models"]:
        lines.append(f"No model in the HF cache ({report['hf_home']}).")
    compiled = int(report.get("compile_cache_bytes") or 0)
    if compiled:
        lines.append(f"compile cache: {compiled:,} bytes")
    lines += [f"removed: {path}" for path in report.get("removed") or []]
    return lines


def check_cache(host: Host, container: str, *, clear: bool = False,
                compiled: bool = False) -> dict[str, Any]:
    """Run the check on `host` against the cache `container` mounts; the report."""
    docker = Docker(host)
    inspected = docker.inspect(container)
    if inspected is None:
        raise CacheCheckError(
            f"No container {container} on {host.label}: the check takes the cache's mount "
            "and the image from it.", fix="Run `fluxdeploy up` first (it creates the "
            "container), then check again.")
    mount = cache_mount(inspected)
    if mount is None:
        raise CacheCheckError(f"Container {container} mounts nothing at {HF_MOUNT}.",
                              fix="Recreate it with `fluxdeploy up --force`.")
    result = docker.run_docker(check_args(mount, clear=clear, compiled=compiled),
                               timeout=CHECK_TIMEOUT)
    if not result.ok:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise CacheCheckError(f"The cache check failed on {host.label}: " + " / ".join(tail),
                              fix="`fluxdeploy doctor` checks the host's Docker and image.")
    return parse_report(result.stdout)
