"""What `down` does with the deployment's Lambda file system: keep it (the default: the next
`up` finds the weights there) or, when asked, delete it after the instances are gone."""

from __future__ import annotations

from intelligensi_deploy.cloud.file_systems import delete_file_system
from intelligensi_deploy.cloud.lambda_api import LambdaClient
from intelligensi_deploy.deploy.reporter import Reporter
from intelligensi_deploy.state import Tracker


def settle_file_system(tracker: Tracker, ui: Reporter, client: LambdaClient | None,
                       delete: bool) -> None:
    """After the instances are terminated: say the file system is kept, or delete it."""
    name = tracker.dep.file_system
    if not name or client is None:
        return
    if not delete:
        ui.detail(f"file system {name} kept: the next `up` finds the weights there "
                  "(`fluxdeploy down --delete-file-system` removes it; Lambda bills it per "
                  "GB-month)")
        return
    gone = delete_file_system(client, name, on_wait=ui.detail)
    if gone is None:
        ui.detail(f"file system {name} was already gone")
    else:
        ui.step(f"Deleted file system {gone.name} in {gone.region} (its cached weights too)")
    tracker.update(file_system=None)
