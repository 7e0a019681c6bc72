"""`fluxdeploy key show | rotate`: the API key of a deployment whose server checks keys;
`fluxdeploy cert`: its pinned TLS certificate.

As in cli.py, what a command needs is imported inside it (`# lazy:`), for start-up time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

key_app = typer.Typer(help="The API key of a deployment with `auth` (exposure: public has "
                      "it): show it, or give the server a new one.", no_args_is_help=True)

NameOpt = typer.Option(None, "--name", "-n", help="Deployment name (default: the only or most "
                       "recent one).")


@key_app.command("show")
def show(
    name: str | None = NameOpt,
    reveal: bool = typer.Option(False, "--reveal", help="Print it even when the output is not "
                                "a terminal (a pipe, a file, a CI log)."),
) -> None:
    """Print the deployment's API key (to a terminal only, unless --reveal)."""
    from intelligensi_deploy import api_keys  # lazy: start-up of --help
    from intelligensi_deploy.key_rotation import require_auth  # lazy: httpx, paramiko
    from intelligensi_deploy.state import StateStore  # lazy: pydantic

    store = StateStore()
    dep = store.resolve(name)
    require_auth(dep)
    token = api_keys.client_key(store.root, dep.name, dep.auth)
    assert token is not None
    if not (reveal or sys.stdout.isatty()):
        typer.echo("Not printing the API key: the output is not a terminal, and a key in a "
                   "pipe or a log is a key given away. Pass --reveal to print it anyway "
                   f"(it is in {api_keys.key_path(store.root, dep.name)}).", err=True)
        raise typer.Exit(1)
    typer.echo(token.value)


@key_app.command("rotate")
def rotate(name: str | None = NameOpt) -> None:
    """Give the server a new API key (the old one stops working; the model stays loaded)."""
    from intelligensi_deploy import key_rotation  # lazy: httpx, paramiko
    from intelligensi_deploy.state import StateStore  # lazy: pydantic

    store = StateStore()
    dep = store.resolve(name)
    key_rotation.rotate(dep, store.root, lambda line: typer.echo(line, err=True))
    typer.echo(f"Rotated the API key of {dep.name!r}: `fluxdeploy key show` prints the new one; "
               "clients holding the old one now get 401.")


def cert(
    name: str | None = NameOpt,
    output: str | None = typer.Option(None, "--output", "-o", help="Write the PEM here "
                                      "(default: print it)."),
) -> None:
    """The public endpoint's TLS certificate (PEM), as pinned: for `curl --cacert` and a
    browser's trust store."""
    from intelligensi_deploy.errors import FluxdeployError  # lazy: start-up of --help
    from intelligensi_deploy.state import StateStore  # lazy: pydantic

    dep = StateStore().resolve(name)
    if dep.tls is None:
        raise FluxdeployError(
            f"Deployment {dep.name!r} serves plain HTTP (exposure {dep.exposure}): it has no "
            "certificate.", fix="HTTPS comes with `exposure: public` in the preset, then "
            f"`fluxdeploy up --preset {dep.preset} --name {dep.name}`.", doc="tls")
    if output:
        Path(output).write_text(dep.tls.cert_pem, encoding="ascii")
        typer.echo(f"Wrote {output} ({dep.tls.fingerprint}). Try: curl --cacert {output} "
                   f"https://{dep.ip}:{dep.port}/health", err=True)
    else:
        typer.echo(dep.tls.cert_pem, nl=False)
