"""Every name fluxdeploy gives to things it creates, built from the deployment's name.

One place, so that `up`, `down`, `status`, `doctor` and the cluster commands always agree on
what to look for: the container, the Lambda instance, the secrets file on the host, the
firewall rule's description and the container labels.

A single-node deployment `foo` runs container `fluxdeploy-foo` on instance `fluxdeploy-foo`,
its secrets in `~/.fluxdeploy/foo.env`. Node N of a cluster `foo` is instance and container
`fluxdeploy-foo-nodeN`, secrets in `~/.fluxdeploy/foo-nodeN.env` (per node, so that nodes
sharing a home never collide).
"""

from __future__ import annotations

PREFIX = "fluxdeploy"
SECRETS_DIR = ".fluxdeploy"  # under the host user's home, mode 0700
HF_CACHE_VOLUME = "fluxdeploy-hf-cache"  # the Docker volume of the Hugging Face cache

# Container labels. CONFIG_LABEL carries a digest of the container's configuration; `up`
# replaces a container whose digest differs. Two digests exist, one per kind of container,
# and each is stable on its own (changing either replaces every running container of that
# kind on the next `up`):
#   - a single-node server: container_plan.container_spec hashes what the server runs with
#     (image, port, publish address, environment, GPUs, cache volume);
#   - a cluster node: cluster_up.config_hash hashes the node's whole `docker run` argv
#     (without the label itself).
CONFIG_LABEL = "fluxdeploy.config"
DEPLOYMENT_LABEL = "fluxdeploy.deployment"
PRESET_LABEL = "fluxdeploy.preset"
NODE_LABEL = "fluxdeploy.node"
ROLE_LABEL = "fluxdeploy.role"  # a cluster node's head/worker, or "watchdog"


def container_name(deployment: str) -> str:
    """The server container of a single-node deployment."""
    return f"{PREFIX}-{deployment}"


def instance_name(deployment: str) -> str:
    """The Lambda instance of a single-node deployment (the name shown in Lambda's console)."""
    return f"{PREFIX}-{deployment}"


def node_name(deployment: str, index: int) -> str:
    """Node `index` of a cluster: its Lambda instance and its container (1 = the Ray head)."""
    return f"{PREFIX}-{deployment}-node{index}"


# The server's own secrets (its API keys file, its TLS key and certificate) live in a Docker
# volume per deployment, written as root and owned by the image's user (remote/secret_volume.py),
# mounted read-only: a file the server can re-read (a key rotation) without being restarted.
SECRETS_MOUNT = "/run/fluxdeploy"
API_KEYS_FILE = "api-keys"
TLS_CERT_FILE = "tls.crt"
TLS_KEY_FILE = "tls.key"


def secrets_volume(deployment: str) -> str:
    """The Docker volume of the deployment's server secrets (keys file, TLS files)."""
    return f"{PREFIX}-{deployment}-secrets"


def file_system_name(deployment: str) -> str:
    """The Lambda file system `file_system: auto` gives a deployment (its HF cache)."""
    return f"{PREFIX}-{deployment}"


def watchdog_name(deployment: str) -> str:
    """The container that enforces the deployment's limits (on node 1 of a cluster)."""
    return f"{PREFIX}-{deployment}-watchdog"


def env_file_name(deployment: str, index: int | None = None, *, watchdog: bool = False) -> str:
    """The secrets file's path relative to the host user's home (`index`: a cluster node;
    `watchdog`: the watchdog's, which holds the Lambda API key and nothing else)."""
    suffix = "-watchdog" if watchdog else "" if index is None else f"-node{index}"
    return f"{SECRETS_DIR}/{deployment}{suffix}.env"


def env_file_path(home: str, deployment: str, index: int | None = None, *,
                  watchdog: bool = False) -> str:
    """The secrets file's absolute path on a host whose user's home is `home`."""
    return f"{home}/{env_file_name(deployment, index, watchdog=watchdog)}"


# Lambda instance tags set at launch (the launch request's `tags`; keys match
# ^[a-z][a-z0-9-:]+$): `fluxdeploy instances` finds every instance fluxdeploy launched, from
# any machine, whether or not this machine has a record of it.
DEPLOYMENT_TAG = "fluxdeploy-deployment"
NODE_TAG = "fluxdeploy-node"


def instance_tags(deployment: str, index: int | None = None) -> dict[str, str]:
    """The tags of a deployment's instance (`index`: a cluster node)."""
    tags = {DEPLOYMENT_TAG: deployment}
    if index is not None:
        tags[NODE_TAG] = str(index)
    return tags


def rule_description(deployment: str) -> str:
    """The description of the firewall rule `up` adds for a public serving port."""
    return f"{PREFIX} {deployment}"
