"""The containers of a multi-node (Ray Serve) cluster, as pure argv builders.

Node 1 runs ``python -m flux_server.node head`` (the Ray head and the endpoint), every other
node ``... worker``, each in the bundled image on the host's network (Ray advertises the VM's
own address; its ports are pinned in the range the /32 firewall rules open). Secrets (the
Hugging Face token and the cluster's Ray token) reach each node in its 0600 env file only.
"""

from __future__ import annotations

import secrets as _random
from collections.abc import Sequence
from dataclasses import dataclass

from intelligensi_deploy import names
from intelligensi_deploy.cloud.ray_ports import RAY_PORTS
from intelligensi_deploy.container_plan import secrets_volumes, server_secrets_env
from intelligensi_deploy.presets import Preset
from intelligensi_deploy.remote.docker_args import SecretInArgvError, looks_secret
from intelligensi_deploy.secrets import Token

RAY_TOKEN_NAME = "RAY_AUTH_TOKEN"


@dataclass(frozen=True)
class ClusterNode:
    """One node: its position (1 = head), name and the address Ray advertises."""

    index: int
    name: str
    ip: str

    @property
    def role(self) -> str:
        return "head" if self.index == 1 else "worker"


def new_ray_token() -> str:
    """A fresh cluster token (256 bits, as Ray's own generator)."""
    return _random.token_hex(32)


def node_env_file(hf_token: Token | None, ray_token: str) -> bytes:
    """The body of a node's 0600 env file: every secret the node needs, and only those."""
    lines = [f"{RAY_TOKEN_NAME}={ray_token}"]
    if hf_token is not None:
        lines.append(f"HF_TOKEN={hf_token.value}")
    return ("\n".join(lines) + "\n").encode()


def node_run_args(preset: Preset, deployment: str, node: ClusterNode, head_ip: str,
                  env_file: str, per_node: int, image: str | None = None) -> list[str]:
    """``docker run -d`` (the args after ``docker``) for one node of the cluster; `image`
    is the tag to run (the bundled image's content-hash tag), default the preset's."""
    env = {"FLUX_NODE_IP": node.ip, "FLUX_NODE_REPLICAS": str(per_node),
           "RAY_AUTH_MODE": "token", **preset.server.container_env(), **preset.scale_env(),
           **preset.env}
    if node.role == "head":
        # host networking: the serving port binds the VM's loopback unless it is public
        env.update(PORT=str(preset.port),
                   FLUX_HOST="0.0.0.0" if preset.exposure == "public" else "127.0.0.1",
                   FLUX_RAY_ADDRESS=f"{node.ip}:{RAY_PORTS.gcs}", **server_secrets_env(preset))
    else:
        env["FLUX_RAY_HEAD"] = f"{head_ip}:{RAY_PORTS.gcs}"
    leaked = sorted(name for name in env if looks_secret(name))
    if leaked:
        raise SecretInArgvError(
            f"{', '.join(leaked)} look(s) like a secret and would be visible in `ps` on the "
            "node if passed with -e.", fix="Remove it from the preset's env: secrets reach "
            "each node through its 0600 env file.", doc="secrets")
    args = ["run", "-d", "--name", names.node_name(deployment, node.index),
            "--restart", "unless-stopped", "--network", "host", "--shm-size", "8g"]
    if preset.gpus:
        args += ["--gpus", "all"]
    args += ["--env-file", env_file]
    for name, value in env.items():
        args += ["-e", f"{name}={value}"]
    if node.role == "head":  # the endpoint's API keys (and TLS files): a volume on node 1
        for source, target in secrets_volumes(preset, deployment):
            args += ["-v", f"{source}:{target}"]
    args += ["-v", f"{preset.hf_cache or names.HF_CACHE_VOLUME}:/data/hf",
             "--label", f"{names.DEPLOYMENT_LABEL}={deployment}",
             "--label", f"{names.NODE_LABEL}={node.index}",
             "--label", f"{names.ROLE_LABEL}={node.role}",
             image or preset.image, "python", "-m", "flux_server.node", node.role]
    return args


def cluster_nodes(deployment: str, ips: Sequence[str]) -> list[ClusterNode]:
    """Nodes in launch order; the first one is the head."""
    return [ClusterNode(i, names.node_name(deployment, i), ip)
            for i, ip in enumerate(ips, start=1)]


def start_order(nodes: Sequence[ClusterNode]) -> list[ClusterNode]:
    """The head first (workers join it), then the workers."""
    return sorted(nodes, key=lambda n: n.index != 1)
