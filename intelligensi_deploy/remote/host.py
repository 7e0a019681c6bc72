"""Hosts that run commands: the local machine (subprocess) or a remote one over SSH (paramiko).

This module is the public face of `remote/`: import hosts from here. The code lives in
smaller modules, re-exported unchanged:

- `host_protocol`: `Host` (the protocol), `RunResult`, `CommandTimeout`;
- `local_host`: `LocalHost`;
- `ssh_host`: `SSHHost`, `wait_for_ssh`;
- `ssh_errors`: `SSHConnectError`, `SSHAuthError`, `HostKeyMismatch`, `SSHTimeout`;
- `ssh_keys`: `fingerprint` (and key pinning);
- `tunnel`: `PortForward`, what `SSHHost.forward` runs (like `ssh -L`).

A command is always an argv list. Over SSH it is quoted with ``shlex.join``; secrets never go
into argv: they travel on stdin or through `Host.write_file` (which sends the data on stdin).
paramiko is imported inside the functions that need it, so importing this module stays cheap.
"""

from __future__ import annotations

from intelligensi_deploy.remote.host_protocol import (
    CommandTimeout,
    Host,
    OutputCallback,
    RunResult,
    Stdin,
)
from intelligensi_deploy.remote.local_host import LocalHost
from intelligensi_deploy.remote.ssh_errors import (
    HostKeyMismatch,
    SSHAuthError,
    SSHConnectError,
    SSHTimeout,
)
from intelligensi_deploy.remote.ssh_host import SSHHost, wait_for_ssh
from intelligensi_deploy.remote.ssh_keys import fingerprint
from intelligensi_deploy.remote.tunnel import PortForward

__all__ = [
    "CommandTimeout",
    "Host",
    "HostKeyMismatch",
    "LocalHost",
    "OutputCallback",
    "PortForward",
    "RunResult",
    "SSHAuthError",
    "SSHConnectError",
    "SSHHost",
    "SSHTimeout",
    "Stdin",
    "fingerprint",
    "wait_for_ssh",
]
