"""Lambda file systems: the deployment's HF cache that outlives its VMs.

`up` creates one (preset `file_system: auto`: `fluxdeploy-<name>`, in the launch region)
and mounts it; `down` keeps it, since the next VM then finds the weights there instead of
downloading 24 GB again; `down --delete-file-system` deletes it once no instance mounts it.
Lambda's API gives no file system price (it bills per GB-month: see Lambda's pricing page).
"""

from __future__ import annotations

from collections.abc import Callable

from intelligensi_deploy.cloud.delete_retry import delete_when_free
from intelligensi_deploy.cloud.lambda_api import LambdaClient
from intelligensi_deploy.cloud.lambda_errors import FileSystemInUse
from intelligensi_deploy.cloud.lambda_types import FileSystem
from intelligensi_deploy.errors import FluxdeployError

DELETE_ATTEMPTS = 12
DELETE_DELAY_S = 10.0


def find_file_system(client: LambdaClient, name: str) -> FileSystem | None:
    """The account's file system called `name`, if any."""
    return next((fs for fs in client.file_systems() if fs.name == name), None)


def delete_file_system(client: LambdaClient, name: str, *, attempts: int = DELETE_ATTEMPTS,
                       delay_s: float = DELETE_DELAY_S,
                       on_wait: Callable[[str], None] | None = None) -> FileSystem | None:
    """Delete the file system `name`; the one deleted, None when there was none.

    Lambda refuses while an instance that mounts it is not terminated yet (a terminating one
    counts): each refusal waits `delay_s` and asks again, up to `attempts` times."""
    found = find_file_system(client, name)
    if found is None:
        return None
    outcome = delete_when_free(lambda: client.delete_file_system(found.id), FileSystemInUse,
                               attempts=attempts, delay_s=delay_s, pause=client.pause,
                               on_wait=on_wait, held=f"file system {name} is still mounted "
                               "by an instance that is terminating")
    if outcome != "in-use":
        return found if outcome == "deleted" else None
    raise FluxdeployError(
        f"Lambda still refuses to delete file system {name!r}: an instance mounts it (asked "
        f"{attempts} times).",
        fix="Run `fluxdeploy down --delete-file-system` again once `fluxdeploy instances` "
        "shows no instance of it, or delete it in the Lambda dashboard (Storage).",
        doc="file-systems")


def describe(fs: FileSystem) -> str:
    """`fluxdeploy-web in us-east-1, 24.1 GB used, mounted` for a user."""
    used = f"{fs.bytes_used / 1e9:.1f} GB used" if fs.bytes_used is not None else "size unknown"
    return f"{fs.name} in {fs.region}, {used}, {'mounted' if fs.is_in_use else 'not mounted'}"
