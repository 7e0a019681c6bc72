"""`fluxdeploy fs list`: the Lambda file systems of the account, and which deployment's
weights each one keeps. As in cli.py, what a command needs is imported inside it."""

from __future__ import annotations

import typer

fs_app = typer.Typer(help="Lambda file systems: the HF caches that outlive the VMs.",
                     no_args_is_help=True)

PRICE_NOTE = ("Lambda's API gives no file system price: it bills per GB-month (see "
              "https://lambda.ai/pricing); `fluxdeploy down --delete-file-system` removes one.")


@fs_app.command("list")
def list_file_systems(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every file system: region, space used, whether an instance mounts it, which
    deployment recorded it."""
    from rich.console import Console  # lazy: rich
    from rich.table import Table  # lazy: rich

    from intelligensi_deploy.cli_output import print_json  # lazy: start-up of --help
    from intelligensi_deploy.cloud.lambda_api import LambdaClient  # lazy: httpx
    from intelligensi_deploy.state_records import read_records  # lazy: start-up of --help

    owners = {r.get("file_system"): r.get("name") for r in read_records()
              if r.get("file_system")}
    found = LambdaClient.from_env().file_systems()
    rows = [{"name": fs.name, "region": fs.region, "bytes_used": fs.bytes_used,
             "mounted": fs.is_in_use, "mount_point": fs.mount_point,
             "deployment": owners.get(fs.name), "price_per_month": None} for fs in found]
    if as_json:
        print_json({"file_systems": rows, "price_note": PRICE_NOTE})
        return
    console = Console(highlight=False)
    if not rows:
        console.print("No file systems on this Lambda account.")
        return
    table = Table("name", "region", "used", "mounted", "deployment")
    for row in rows:
        used = row["bytes_used"]
        table.add_row(str(row["name"]), str(row["region"]),
                      f"{used / 1e9:.1f} GB" if isinstance(used, int) else "?",
                      "yes" if row["mounted"] else "no",
                      str(row["deployment"] or "- (no record here)"))
    console.print(table)
    console.print(PRICE_NOTE)
