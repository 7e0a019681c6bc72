"""`fluxdeploy capacity` and `fluxdeploy instances`: what the Lambda account has (cli.py
registers them). As in cli.py, heavy modules are imported inside the commands."""

from __future__ import annotations

import time
from collections.abc import Callable

import typer


def capacity(as_json: bool = typer.Option(False, "--json")) -> None:
    """Lambda instance types, their GPU and price, and the regions with capacity now."""
    from rich.console import Console  # lazy: rich
    from rich.table import Table  # lazy: rich

    from intelligensi_deploy.cli_output import print_json  # lazy: start-up of --help
    from intelligensi_deploy.cloud.lambda_api import LambdaClient  # lazy: httpx
    from intelligensi_deploy.cloud.provision import capacity_rows  # lazy: with the client

    rows = capacity_rows(LambdaClient.from_env().instance_types())
    if as_json:
        print_json({"instance_types": [r.to_dict() for r in rows]})
        return
    table = Table("type", "GPU", "$/h", "regions with capacity")
    for r in rows:
        table.add_row(r.name, r.gpu, f"{r.price_per_hour:.2f}",
                      ", ".join(r.regions) or "[dim]none[/dim]")
    Console().print(table)


def instances(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every instance on the Lambda account, and which deployment recorded it: flags the ones
    fluxdeploy launched that no record here knows of (they bill unseen)."""
    from rich.console import Console  # lazy: rich
    from rich.table import Table  # lazy: rich

    from intelligensi_deploy.cli_output import print_json  # lazy: start-up of --help
    from intelligensi_deploy.cloud.lambda_api import LambdaClient  # lazy: httpx
    from intelligensi_deploy.cost import describe_spend  # lazy: start-up of --help
    from intelligensi_deploy.inventory import UNRECORDED, classify  # lazy: with the client
    from intelligensi_deploy.state_records import read_records  # lazy: start-up of --help

    rows = classify(LambdaClient.from_env().list_instances(), read_records(), time.time())
    if as_json:
        print_json({"instances": [r.to_dict() for r in rows]})
        return
    console = Console(highlight=False)
    if not rows:
        console.print("No instances on this Lambda account: nothing is billing.")
        return
    table = Table("id", "type", "region", "ip", "status", "cost", "deployment")
    for r in rows:
        who = r.deployment or (f"{r.tagged}? {r.verdict}" if r.tagged else r.verdict)
        table.add_row(r.id, r.instance_type, r.region, r.ip or "-", r.status,
                      describe_spend(r.spend.to_dict()), who)
    console.print(table)
    lost = [r for r in rows if r.verdict == UNRECORDED]
    if lost:
        console.print(f"{len(lost)} instance(s) launched by fluxdeploy have no record here "
                      "(another machine, or a lost state folder): they bill until terminated. "
                      "End one with `fluxdeploy down --instance ID`.")


def terminate_instance(instance_id: str, approve: Callable[[str], bool] | None) -> None:
    """`down --instance ID`: terminate an instance of the account that no record here holds
    (asked first on a terminal, unless --yes)."""
    from intelligensi_deploy.cloud.lambda_api import LambdaClient  # lazy: httpx
    from intelligensi_deploy.cloud.provision import terminate_if_present  # lazy: with client
    from intelligensi_deploy.inventory import classify, pick_for_termination  # lazy: client
    from intelligensi_deploy.state_records import read_records  # lazy: start-up of --help

    client = LambdaClient.from_env()
    row = pick_for_termination(classify(client.list_instances(), read_records(), time.time()),
                               instance_id)
    what = (f"{row.id} ({row.instance_type} in {row.region}, {row.ip or 'no address'}; "
            f"{row.verdict}{f': {row.tagged}' if row.tagged else ''})")
    typer.echo(f"Terminating {what}: its disk is lost (Lambda has no stop).")
    if approve is not None and not approve("Terminate it?"):
        typer.echo("Not terminated.")
        raise typer.Exit(1)
    if terminate_if_present(client, row.id):
        typer.echo(f"Terminated instance {row.id} (billing stops).")
    else:
        typer.echo(f"Instance {row.id} was already gone.")
