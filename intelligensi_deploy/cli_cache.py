"""`fluxdeploy cache verify / clear`: the deployment's HF cache, checked on its host
(cache_check.py). As in cli.py, what a command needs is imported inside it."""

from __future__ import annotations

import typer

cache_app = typer.Typer(help="The deployment's HF cache on its host: verify, clear what "
                        "is broken.", no_args_is_help=True)

NameOpt = typer.Option(None, "--name", "-n", help="Deployment name (default: the only or "
                       "most recent one).")


def _run(name: str | None, as_json: bool, clear: bool, compiled: bool) -> int:
    """Check (or clear) the cache of the deployment `name`; the exit code."""
    from intelligensi_deploy.cache_check import (  # lazy: paramiko
        broken_count,
        check_cache,
        report_lines,
    )
    from intelligensi_deploy.cli_output import print_json  # lazy: start-up of --help
    from intelligensi_deploy.machines import connect_existing  # lazy: pydantic, paramiko
    from intelligensi_deploy.state import StateStore  # lazy: pydantic

    dep = StateStore().resolve(name)
    host = connect_existing(dep)
    try:
        report = check_cache(host, dep.container_name, clear=clear, compiled=compiled)
    finally:
        host.close()
    if as_json:
        print_json(report)
    else:
        typer.echo(f"HF cache of {dep.name!r} on {host.label}:")
        for line in report_lines(report):
            typer.echo(line)
    broken = broken_count(report)
    if broken and not clear:
        typer.echo("Fix: `fluxdeploy cache clear` removes them; the next `fluxdeploy up` "
                   "downloads them again (PLAYBOOK.md#cache-corrupt).", err=True)
    return 1 if broken and not clear else 0


@cache_app.command("verify")
def verify(name: str | None = NameOpt,
           as_json: bool = typer.Option(False, "--json", help="The report as JSON.")) -> None:
    """Check every safetensors file of the cached models against its header, and list the
    .incomplete files of interrupted downloads. Exit 1 when something is broken."""
    raise typer.Exit(_run(name, as_json, clear=False, compiled=False))


@cache_app.command("clear")
def clear(name: str | None = NameOpt,
          compiled: bool = typer.Option(False, "--compiled", help="Also remove the compile "
                                        "cache (torch.compile's graphs)."),
          as_json: bool = typer.Option(False, "--json", help="The report as JSON.")) -> None:
    """Remove the broken files (and .incomplete ones) from the cache: the next `up`
    downloads them again."""
    raise typer.Exit(_run(name, as_json, clear=True, compiled=compiled))
