"""The `fluxdeploy` command: parse, call one function, render. No logic lives here.

Every module a command needs is imported inside that command, each import marked `# lazy:`
with what it keeps out of the others (httpx, paramiko, pydantic, rich; and for `--help`,
even the few light modules: each is a millisecond), so that `fluxdeploy --help`,
`presets list`, `status` and `diagnose` answer fast (tests/unit/test_cli_fast.py checks what
they load, bench/cli_startup.py times them).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from intelligensi_deploy import cli_params

if TYPE_CHECKING:  # types only: state loads pydantic, which the quick commands never import
    from intelligensi_deploy.state import Deployment, StateStore

cli_params.install()  # plain str/int/Path parameters without typer's pydantic adapters

EPILOG = (
    "Exit codes: 0 success; 1 failure (the message says what to do); 2 bad input "
    "(preset, arguments) or doctor could not run; 130 interrupted (SIGINT), 143 stopped "
    "(SIGTERM): the state is saved, run the same command again to resume. Details: "
    "PLAYBOOK.md."
)

app = typer.Typer(
    name="fluxdeploy",
    help="Deploy FLUX.1 on rented GPU machines (Lambda Cloud, your own SSH host, or locally), "
    "and get it out of trouble.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: rich's help renderer alone costs ~150 ms
)
from intelligensi_deploy import cli_cloud, cli_shell  # after cli_params.install()
from intelligensi_deploy.cli_cache import cache_app  # after cli_params.install()
from intelligensi_deploy.cli_fs import fs_app  # after cli_params.install()
from intelligensi_deploy.cli_k8s import k8s_app  # after cli_params.install()
from intelligensi_deploy.cli_key import cert, key_app  # after cli_params.install()
from intelligensi_deploy.cli_presets_image import (  # after cli_params.install()
    BuildOpt,
    image_app,
    presets_app,
)

app.add_typer(presets_app, name="presets")
app.add_typer(image_app, name="image")
app.add_typer(key_app, name="key")
app.add_typer(fs_app, name="fs")
app.add_typer(cache_app, name="cache")
app.add_typer(k8s_app, name="k8s")

NameOpt = typer.Option(None, "--name", "-n", help="Deployment name (default: the only or most "
                       "recent one).")

OutputOpt = typer.Option("flux.png", "--output", "-o", help="Where to write the PNG.")


def _store() -> StateStore:
    from intelligensi_deploy.state import StateStore  # lazy: pydantic

    return StateStore()


def _resolve(name: str | None) -> Deployment:
    dep = _store().resolve(name)
    if not name:
        typer.echo(f"(deployment {dep.name!r})", err=True)
    return dep


@app.command()
def up(
    preset: str = typer.Option(..., "--preset", "-p", help="Preset name or path to a YAML file."),
    name: str | None = typer.Option(None, "--name", "-n", help="Deployment name "
                                       "(default: the preset's name)."),
    force: bool = typer.Option(False, "--force", help="Replace the container even while it is "
                               "still loading the model."),
    host: str | None = typer.Option(None, "--host", help="Address of your host (preset ssh).",
                                       envvar="FLUXDEPLOY_SSH_HOST"),
    build: list[str] | None = BuildOpt,
    yes: bool = typer.Option(False, "--yes", "-y", help="Launch without asking at the price "
                             "line (asked only on a terminal)."),
    limit_idle: str | None = typer.Option(None, "--limit-idle", metavar="DURATION",
                                          help="Terminate after this long with no request "
                                          "(45m, 2h, 1h30m; off). Beats FLUXDEPLOY_LIMIT_IDLE "
                                          "and the preset's limits.idle."),
    limit_max: str | None = typer.Option(None, "--limit-max", metavar="DURATION",
                                         help="Terminate this long after launch (8h; off). "
                                         "Beats FLUXDEPLOY_LIMIT_MAX and limits.max_duration."),
    wait: bool = typer.Option(False, "--wait", help="No capacity where the preset (and its "
                              "file system) may launch: ask again every "
                              "$FLUXDEPLOY_CAPACITY_POLL_S seconds (60) until there is."),
) -> None:
    """Launch (or resume) a deployment and wait until the server is ready. On Lambda, the
    price is shown (and on a terminal, asked about) before anything bills."""
    from intelligensi_deploy.bundle.settings import parse_flags  # lazy: pydantic
    from intelligensi_deploy.cli_output import approver, capacity_poll_s  # lazy: start-up
    from intelligensi_deploy.console import ConsoleReporter  # lazy: rich
    from intelligensi_deploy.deploy import dispatch  # lazy: httpx, paramiko
    from intelligensi_deploy.preset_paths import preset_reference  # lazy: start-up of --help
    from intelligensi_deploy.presets import load_preset  # lazy: pydantic, yaml
    from intelligensi_deploy.signals import Interrupted, interruptible  # lazy: start-up of --help

    loaded = load_preset(preset)
    flags = parse_flags(build or [])
    ui = ConsoleReporter()
    try:
        with interruptible():  # SIGINT/SIGTERM end the waits cleanly, with the state saved
            dep = dispatch.up(loaded, name=name, store=_store(), ui=ui, force=force,
                              ssh_host=host, preset_ref=preset_reference(preset),
                              build_flags=flags, approve=approver(yes),
                              limit_flags={"idle": limit_idle, "max_duration": limit_max},
                              wait_capacity_s=capacity_poll_s() if wait else None)
    except Interrupted:
        ui.close()
        typer.echo("What was done is recorded: run the same command again to resume, or "
                   "`fluxdeploy down` to clean up.", err=True)
        raise
    ui.step(f"Ready: deployment {dep.name!r}, model {loaded.server.model}")
    if dep.timeline:
        from intelligensi_deploy.timeline import describe  # lazy: start-up of --help

        ui.detail(describe(dep.timeline))
    if dep.provider == "local":
        typer.echo(f"URL: http://127.0.0.1:{dep.port}   Try: fluxdeploy generate \"a red fox\"")
    elif dep.exposure == "public":
        scheme = "https" if dep.tls else "http"
        typer.echo(f"URL: {scheme}://{dep.ip}:{dep.port}   (or through `fluxdeploy tunnel`)")
        if dep.tls:
            typer.echo(f"TLS: self-signed, pinned {dep.tls.fingerprint}; `fluxdeploy cert -o "
                       f"{dep.name}.pem` writes it for `curl --cacert` and browsers.")
    else:
        typer.echo("Reach it with `fluxdeploy tunnel` (port kept private on the VM), or "
                   "`fluxdeploy generate \"a red fox\"`.")
    if dep.auth:
        typer.echo("API key: send `Authorization: Bearer <key>`; `fluxdeploy key show` prints "
                   "it (generate and doctor send it themselves).")


@app.command()
def down(
    name: str | None = NameOpt,
    instance: str | None = typer.Option(None, "--instance", help="Terminate this instance of "
                                        "the account that no deployment here records (see "
                                        "`fluxdeploy instances`)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="With --instance: do not ask."),
    delete_file_system: bool = typer.Option(False, "--delete-file-system", help="Also "
                                            "delete the deployment's Lambda file system (its "
                                            "cached weights); kept by default."),
) -> None:
    """Remove the container and terminate the instance (and the firewall rule `up` added).
    The deployment's Lambda file system is kept unless --delete-file-system."""
    from intelligensi_deploy.cli_output import approver  # lazy: start-up of --help
    from intelligensi_deploy.console import ConsoleReporter  # lazy: rich
    from intelligensi_deploy.deploy import dispatch  # lazy: httpx, paramiko

    if instance:
        cli_cloud.terminate_instance(instance, approver(yes))
        return
    dep = _resolve(name)
    ui = ConsoleReporter()
    if dispatch.down(dep, store=_store(), ui=ui,
                     delete_file_system=delete_file_system) is not None:
        ui.step(f"Deployment {dep.name!r} is down")


@app.command()
def status(name: str | None = NameOpt, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show deployments: recorded state, and live container and /ready state."""
    from intelligensi_deploy.cli_output import print_json  # lazy: start-up of --help
    from intelligensi_deploy.state_records import read_records  # lazy: start-up of --help
    from intelligensi_deploy.status import record_status  # lazy: start-up of --help

    records = read_records()
    if name:
        records = [r for r in records if r.get("name") == name]
        if not records:
            _store().resolve(name)  # raises StateError, naming the deployments there are
    reports = [record_status(r) for r in records]
    if as_json:
        print_json({"deployments": reports})
    else:
        from intelligensi_deploy.status_view import render  # lazy: rich

        render(reports)


@app.command()
def logs(
    name: str | None = NameOpt,
    follow: bool = typer.Option(False, "--follow", "-f"),
    tail: int | None = typer.Option(200, "--tail", help="Lines from the end (0: all)."),
    since: str | None = typer.Option(None, "--since", help="e.g. 10m, 2h, or a timestamp."),
    node: int | None = typer.Option(None, "--node", help="A cluster's node (1: the head)."),
    replica: str | None = typer.Option(None, "--replica", help="A cluster's replica id "
                                       "(`status` lists them): its load and Serve lines."),
) -> None:
    """Print the server container's log (redacted); on a cluster, a node's or a replica's."""
    from intelligensi_deploy.cluster_access import (  # lazy: pydantic, paramiko
        connect_to_node,
        show_replica_log,
    )
    from intelligensi_deploy.machines import connect_existing  # lazy: pydantic, paramiko
    from intelligensi_deploy.redact import redact  # lazy: start-up of --help
    from intelligensi_deploy.remote.docker import Docker  # lazy: paramiko
    from intelligensi_deploy.signals import interruptible  # lazy: start-up of --help

    dep = _resolve(name)

    def show(line: str) -> None:
        sys.stdout.write(redact(line).rstrip("\n") + "\n")
        sys.stdout.flush()

    with interruptible():  # `logs -f` runs until SIGINT/SIGTERM: exit 130/143, closed
        if replica:
            show_replica_log(dep, replica, tail, show)
            return
        if node is not None:
            host, container = connect_to_node(dep, node)
        else:
            host, container = connect_existing(dep), dep.container_name
        try:
            Docker(host).logs(container, tail=tail or None, since=since, follow=follow,
                              on_output=show)
        finally:
            host.close()


@app.command()
def tunnel(
    name: str | None = NameOpt,
    local_port: int | None = typer.Option(None, "--local-port", "-L", help="Local port "
                                          "(default 8000, 8265 with --dashboard; 0: any)."),
    dashboard: bool = typer.Option(False, "--dashboard", help="A cluster's Ray dashboard "
                                   "(127.0.0.1:8265 on the head) instead of the server."),
) -> None:
    """Forward a local port to the server over SSH (like ssh -L) until Ctrl-C or SIGTERM."""
    from intelligensi_deploy.cloud.ray_ports import RAY_PORTS  # lazy: pydantic (state)
    from intelligensi_deploy.cluster_access import (  # lazy: pydantic, paramiko
        dashboard_token_hint,
        require_cluster,
    )
    from intelligensi_deploy.machines import connect_existing  # lazy: pydantic, paramiko
    from intelligensi_deploy.signals import (  # lazy: start-up of --help
        Interrupted,
        interruptible,
        wait_forever,
    )

    dep = _resolve(name)
    remote, what = dep.port, f"{dep.name}:{dep.port}"
    if dashboard:
        require_cluster(dep, "--dashboard")
        remote, what = RAY_PORTS.dashboard, f"the Ray dashboard of {dep.name}"
    try:
        with interruptible():  # whatever the inherited dispositions: exit 130/143, closed
            host = connect_existing(dep)
            try:
                wanted = local_port if local_port is not None else (
                    8265 if dashboard else 8000)
                scheme = "https" if dep.tls and not dashboard else "http"
                with host.forward(remote, local_port=wanted) as port:
                    typer.echo(f"Tunnel open: {scheme}://127.0.0.1:{port} -> {what} (Ctrl-C to "
                               "close)")
                    if dashboard:
                        typer.echo(dashboard_token_hint(dep))
                    sys.stdout.flush()
                    wait_forever()
            finally:
                host.close()
    except Interrupted:
        typer.echo("Tunnel closed.")
        raise


@app.command("open")
def open_page(
    name: str | None = NameOpt,
    no_browser: bool = typer.Option(False, "--no-browser", help="Only print the URL."),
    local_port: int = typer.Option(0, "--local-port", "-L", help="Local port of the tunnel "
                                   "(default: any free one)."),
) -> None:
    """Open the server's prompt page in the browser, through a tunnel held until Ctrl-C."""
    from intelligensi_deploy import open_page as page  # lazy: httpx, paramiko
    from intelligensi_deploy.signals import Interrupted, interruptible  # lazy: start-up of --help

    dep = _resolve(name)
    announce = functools.partial(page.announce_page, open_browser=not no_browser,
                       echo=lambda line: typer.echo(line), verify=page.page_verify(dep))
    if dep.provider != "local":
        typer.echo("Opening an SSH tunnel to the server (Ctrl-C closes it)...")
    if dep.tls:
        typer.echo(f"The browser warns about the self-signed certificate unless it trusts "
                   f"`fluxdeploy cert -o {dep.name}.pem` (pinned {dep.tls.fingerprint}).")
    if dep.auth:  # the key never goes on the browser's command line (argv) or in its history
        typer.echo(f"The page asks for the API key once per tab: `fluxdeploy key show --name "
                   f"{dep.name}` prints it.")
    try:
        with interruptible():  # whatever the inherited dispositions: exit 130/143, closed
            page.hold_page_tunnel(dep, announce, local_port=local_port)
    except Interrupted:
        typer.echo("Tunnel closed.")
        raise


@app.command()
def generate(
    prompt: str = typer.Argument(..., help="What to draw."),
    output: Path = OutputOpt,
    steps: int | None = typer.Option(None, "--steps"),
    width: int = typer.Option(1024, "--width"),
    height: int = typer.Option(1024, "--height"),
    seed: int | None = typer.Option(None, "--seed"),
    guidance: float | None = typer.Option(None, "--guidance"),
    name: str | None = NameOpt,
    url: str | None = typer.Option(None, "--url", help="Server URL (default: through an "
                                      "SSH tunnel to the deployment, with its API key); a "
                                      "server with keys takes $FLUXDEPLOY_API_KEY."),
) -> None:
    """Generate one image and save it (PNG)."""
    from intelligensi_deploy import generate as gen  # lazy: httpx, paramiko

    request = gen.GenerateRequest(prompt=prompt, steps=steps, width=width, height=height,
                                  seed=seed, guidance=guidance)
    if url:
        result = gen.generate(url, request, api_key=gen.url_key())
    else:
        from intelligensi_deploy.api_keys import client_key  # lazy: start-up of --help

        dep = _resolve(name)
        key = client_key(_store().root, dep.name, dep.auth)
        result = gen.generate_on_deployment(dep, request, api_key=key)
    output.write_bytes(result.image)
    typer.echo(f"Wrote {output} ({result.width}x{result.height}, seed {result.seed}, "
               f"{result.seconds:.2f} s)")


app.command()(cert)
app.command()(cli_cloud.capacity)
cli_shell.register(app)  # ssh, exec
app.command()(cli_cloud.instances)


@app.command()
def doctor(name: str | None = NameOpt, as_json: bool = typer.Option(False, "--json")) -> None:
    """Walk the logs-first playbook on a deployment and name what is wrong. Read-only.

    Exit code 0 when no check failed, 1 when one failed, 2 when doctor could not run.
    """
    from intelligensi_deploy.doctor import command as doctor_command  # lazy: httpx, paramiko

    raise typer.Exit(doctor_command.main(name, as_json=as_json))


@app.command()
def diagnose(
    file: str = typer.Argument(..., help="A saved log file, or - for stdin."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Diagnose a saved log (docker logs dump, pasted output). Exit 1 if an error is found."""
    from intelligensi_deploy.doctor import diagnose_command  # lazy: rich, only when it runs

    raise typer.Exit(diagnose_command.diagnose_main(file, as_json=as_json))


def _exit_interrupted(exc: BaseException) -> None:
    from intelligensi_deploy.console import print_error  # lazy: rich
    from intelligensi_deploy.signals import (  # lazy: start-up of --help
        exit_code_for,
        find_interrupted,
    )

    found = find_interrupted(exc)
    if found is not None:  # the command said what it closed and what is saved
        print_error(f"Interrupted ({found.signal_name}).")
    else:
        print_error("Interrupted. What was done is recorded: run the same command again to "
                    "resume, or `fluxdeploy down` to clean up.")
    sys.exit(exit_code_for(exc))


def main() -> None:
    """Entry point: run the app; turn user-facing errors into messages and exit codes."""
    from intelligensi_deploy.errors import FluxdeployError  # lazy: start-up of --help
    from intelligensi_deploy.signals import Interrupted  # lazy: start-up of --help

    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except FluxdeployError as exc:
        from intelligensi_deploy.console import print_error  # lazy: rich

        print_error(f"Error: {exc}")
        sys.exit(exc.exit_code)
    except (Interrupted, KeyboardInterrupt) as exc:  # SIGINT 130, SIGTERM 143
        _exit_interrupted(exc)
    except Exception as exc:  # click's usage errors and aborts (typer vendors click)
        if type(exc).__name__ == "Abort":  # click wraps a KeyboardInterrupt in Abort
            _exit_interrupted(exc)
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
