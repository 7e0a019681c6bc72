"""`up`'s pure decisions about the container: what to do with the one found (keep / wait /
replace / create / refuse), the container to run for a preset, where the HF cache lives.

No I/O here: unit-tested by the hundred (tests/unit/test_deploy_plan.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from intelligensi_deploy import names, secrets
from intelligensi_deploy.health import ReadyStatus
from intelligensi_deploy.presets import Preset
from intelligensi_deploy.remote.docker_args import ContainerSpec, registry_of

CONTAINER_PORT = 8000
LAMBDA_NFS = "/lambda/nfs"  # where Lambda mounts a file system (its default mount_point)


class ContainerAction(str, Enum):
    KEEP = "keep"            # running, ready, same config: nothing to do
    WAIT = "wait"            # running and still loading: wait, never restart
    REPLACE = "replace"      # remove the old one, run the new one
    CREATE = "create"        # none there
    REFUSE = "refuse"        # config changed while loading, and no --force
    START = "start"          # stopped (not crashed), same config: `docker start` it


# How a container that was stopped ends (not a crash): the server's graceful exit on
# SIGTERM (`docker stop`, a reboot), or a signal that ended it unhandled.
STOPPED_EXIT_CODES = (0, 130, 143)


@dataclass(frozen=True)
class ContainerFacts:
    """What `docker inspect` says about the deployment's container."""

    running: bool
    restarting: bool
    config_hash: str | None
    exit_code: int | None = None

    @classmethod
    def from_inspect(cls, data: Mapping[str, Any]) -> ContainerFacts:
        state = data.get("State") or {}
        labels = (data.get("Config") or {}).get("Labels") or {}
        return cls(
            running=bool(state.get("Running")),
            restarting=bool(state.get("Restarting")),
            config_hash=labels.get(names.CONFIG_LABEL),
            exit_code=state.get("ExitCode"),
        )


def plan_container(
    existing: ContainerFacts | None, desired_hash: str, ready: ReadyStatus | None, force: bool
) -> ContainerAction:
    """Decide what `up` does with the container it finds."""
    if existing is None:
        return ContainerAction.CREATE
    if force:
        return ContainerAction.REPLACE
    if (not existing.running and not existing.restarting
            and existing.exit_code in STOPPED_EXIT_CODES
            and existing.config_hash == desired_hash):
        return ContainerAction.START
    if not existing.running or existing.restarting or ready is None or ready.failed:
        return ContainerAction.REPLACE
    same = existing.config_hash == desired_hash
    if ready.ready:
        return ContainerAction.KEEP if same else ContainerAction.REPLACE
    if ready.loading or ready.unreachable:
        return ContainerAction.WAIT if same else ContainerAction.REFUSE
    return ContainerAction.REPLACE


def container_spec(
    preset: Preset, name: str, env_file: str | None, hf_cache: str | None,
    image: str | None = None,
) -> ContainerSpec:
    """The container `up` runs for `preset`, labelled with a hash of its configuration.

    `image` is the image reference to run: the bundled image's content-hash tag, or by
    default the preset's registry image.
    """
    image = image or preset.image
    # A preset with `gpus: true` asked for a GPU: the server fails into /ready `failed`
    # (gpu-not-visible) instead of quietly running FLUX on the CPU (docs/contract.md).
    require_gpu = {"FLUX_REQUIRE_GPU": "1"} if preset.gpus else {}
    env = {"PORT": str(CONTAINER_PORT), **preset.server.container_env(), **require_gpu,
           **preset.scale_env(), **server_secrets_env(preset),
           **preset.env}
    volume = (hf_cache or names.HF_CACHE_VOLUME, "/data/hf")
    publish_ip = "0.0.0.0" if preset.exposure == "public" else "127.0.0.1"
    # the secrets volume is not in the digest: it follows from the env, and a new key in it
    # (`fluxdeploy key rotate`) must not replace the container
    digest = hashlib.sha256(
        json.dumps([image, preset.port, publish_ip, sorted(env.items()), preset.gpus,
                    list(volume)]).encode()
    ).hexdigest()[:16]
    volumes = [volume, *secrets_volumes(preset, name)]
    return ContainerSpec(
        name=names.container_name(name),
        image=image,
        port=preset.port,
        container_port=CONTAINER_PORT,
        publish_ip=publish_ip,
        env=env,
        env_file=env_file,
        gpus=preset.gpus,
        volumes=volumes,
        labels={names.DEPLOYMENT_LABEL: name, names.PRESET_LABEL: preset.name,
                names.CONFIG_LABEL: digest},
    )


def server_secrets_env(preset: Preset) -> dict[str, str]:
    """Where the server finds its secrets in the mounted secrets volume (paths, not values):
    the API keys with `auth`, the TLS certificate and key with `exposure: public`."""
    env = {}
    if preset.auth_on:
        env["FLUX_API_KEYS_FILE"] = f"{names.SECRETS_MOUNT}/{names.API_KEYS_FILE}"
    if preset.tls_on:
        env["FLUX_TLS_CERT_FILE"] = f"{names.SECRETS_MOUNT}/{names.TLS_CERT_FILE}"
        env["FLUX_TLS_KEY_FILE"] = f"{names.SECRETS_MOUNT}/{names.TLS_KEY_FILE}"
    return env


def secrets_volumes(preset: Preset, name: str) -> list[tuple[str, str]]:
    """The deployment's secrets volume, mounted read-only, when the server has secrets."""
    if not (preset.auth_on or preset.tls_on):
        return []
    return [(names.secrets_volume(name), f"{names.SECRETS_MOUNT}:ro")]


def hf_cache_path(preset: Preset, deployment: str) -> str | None:
    """Host path for the Hugging Face cache: the preset's, or on the deployment's Lambda
    file system (mounted at /lambda/nfs/<name>, as Lambda mounts it)."""
    if preset.hf_cache:
        return preset.hf_cache
    file_system = preset.lambda_.file_system_for(deployment) if preset.lambda_ else None
    return f"{LAMBDA_NFS}/{file_system}/huggingface" if file_system else None


def needs_registry_login(image: str, token: secrets.Token | None) -> bool:
    """Log in only when a token is given for a registry other than Docker Hub."""
    return token is not None and registry_of(image) != "docker.io"
