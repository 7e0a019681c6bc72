"""The one exception type a user sees: what happened, what to do, where to read more."""

from __future__ import annotations


class FluxdeployError(Exception):
    """An error a user can act on.

    `message` says what happened (and why, when known), `fix` what to do next, and `doc`
    names the PLAYBOOK.md section (its anchor, e.g. ``ghcr-auth``). The CLI prints all three
    and exits with `exit_code`. Never put a secret in any of them.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, fix: str | None = None, doc: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.doc = doc

    def __str__(self) -> str:
        parts = [self.message]
        if self.fix:
            parts.append(f"Fix: {self.fix}")
        if self.doc:
            parts.append(f"See PLAYBOOK.md#{self.doc}")
        return "\n".join(parts)
