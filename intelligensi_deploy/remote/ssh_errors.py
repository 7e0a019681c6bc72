"""The typed errors of SSH hosts: unreachable, refused login, changed host key, timeout."""

from __future__ import annotations

from intelligensi_deploy.errors import FluxdeployError


class SSHConnectError(FluxdeployError):
    """The SSH server could not be reached (refused, timed out, no banner): worth retrying."""


class SSHAuthError(FluxdeployError):
    """The SSH server refused our key."""


class HostKeyMismatch(FluxdeployError):
    """The server presented a host key other than the one pinned for this deployment."""

    def __init__(
        self,
        label: str,
        pinned_fingerprint: str,
        offered_fingerprint: str,
        *,
        fix: str | None = None,
    ) -> None:
        self.label = label
        self.pinned_fingerprint = pinned_fingerprint
        self.offered_fingerprint = offered_fingerprint
        super().__init__(
            f"The SSH host key of {label} has changed, so fluxdeploy refused to connect.\n"
            f"  pinned (first connection): {pinned_fingerprint}\n"
            f"  offered now:               {offered_fingerprint}\n"
            "Either the machine at this address was replaced (for example the VM was "
            "terminated and a new one got the same IP), or someone is intercepting the "
            "connection (a man in the middle).",
            fix=fix
            or (
                "If you know the VM was replaced, run `fluxdeploy down` for the old deployment "
                "(or forget its pinned host key in the deployment state) and run `fluxdeploy "
                "up` again. If you did not replace it, do not connect: check with your cloud "
                "provider which machine holds this address."
            ),
            doc="ssh-host-key-changed",
        )


class SSHTimeout(FluxdeployError):
    """SSH did not answer within the allowed time."""
