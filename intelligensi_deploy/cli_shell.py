"""`fluxdeploy ssh` and `fluxdeploy exec` (cli.py registers them): a shell, or one command,
on the deployment's VM and in its server container. The work is in shell.py; as in cli.py,
what a command needs is imported inside it (`# lazy:`), for start-up time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from intelligensi_deploy.state import Deployment

NameOpt = typer.Option(None, "--name", "-n", help="Deployment name (default: the only or most "
                       "recent one).")
NodeOpt = typer.Option(None, "--node", help="A cluster's node (default 1: the head).")
CommandArg = typer.Argument(None, help="The command, after `--` (default: a shell).",
                            show_default=False)
# `fluxdeploy ssh --node 2 -- ls -la`: what follows the command's name is its own
PASS_THROUGH = {"allow_interspersed_args": False, "ignore_unknown_options": True}


def ssh(name: str | None = NameOpt, node: int | None = NodeOpt,
        command: list[str] | None = CommandArg) -> None:
    """SSH to the deployment's VM (pinned host key, the preset's user and key): a shell, or
    `-- CMD` (a command line, as ssh runs it). Exits with the remote command's status."""
    from intelligensi_deploy.shell import open_ssh  # lazy: paramiko, pydantic
    from intelligensi_deploy.signals import interruptible  # lazy: start-up of --help

    dep = _resolve(name)
    with interruptible():
        raise typer.Exit(open_ssh(dep, node, command or []))


def exec_(name: str | None = NameOpt, node: int | None = NodeOpt,
          command: list[str] | None = CommandArg) -> None:
    """`docker exec` in the server container (on its VM, or here for provider local): a
    shell, or `-- CMD`. Exits with the command's status."""
    from intelligensi_deploy.shell import open_exec  # lazy: paramiko, pydantic
    from intelligensi_deploy.signals import interruptible  # lazy: start-up of --help

    dep = _resolve(name)
    with interruptible():
        raise typer.Exit(open_exec(dep, node, command or []))


def _resolve(name: str | None) -> Deployment:
    from intelligensi_deploy.state import StateStore  # lazy: pydantic

    dep = StateStore().resolve(name)
    if not name:
        typer.echo(f"(deployment {dep.name!r})", err=True)
    return dep


def register(app: typer.Typer) -> None:
    """Add `ssh` and `exec` to the CLI."""
    app.command(context_settings=PASS_THROUGH)(ssh)
    app.command("exec", context_settings=PASS_THROUGH)(exec_)
