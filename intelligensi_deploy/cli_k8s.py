"""`fluxdeploy k8s render | secret`: the server on a Kubernetes cluster the team runs.

Renders manifests and prints the `kubectl create secret` lines; it never talks to a cluster.
As in cli.py, what a command needs is imported inside it (`# lazy:`), for start-up time.
"""

from __future__ import annotations

from pathlib import Path

import typer

k8s_app = typer.Typer(help="Kubernetes: render the server's manifests from a preset (applied "
                      "by you with kubectl; nothing here reaches a cluster).",
                      no_args_is_help=True)

PresetOpt = typer.Option(..., "--preset", "-p", help="Preset name or path.")
NameOpt = typer.Option(None, "--name", "-n", help="Deployment name (default: the preset's).")
ImageOpt = typer.Option(None, "--image", help="Registry image to run (default: "
                        "kubernetes.image, else the preset's image).")
OutputOpt = typer.Option(None, "--output", "-o", help="Write one file per object in this "
                         "folder (default: one YAML stream on stdout).")


@k8s_app.command("render")
def render(
    preset: str = PresetOpt,
    name: str | None = NameOpt,
    image: str | None = ImageOpt,
    output: Path | None = OutputOpt,
) -> None:
    """Write the Kubernetes objects for a preset (apply them with `kubectl apply -f`)."""
    from intelligensi_deploy.k8s import render as k8s_render  # lazy: pydantic, yaml
    from intelligensi_deploy.preset_paths import resolve_preset_path  # lazy: start-up of --help
    from intelligensi_deploy.presets import load_preset  # lazy: pydantic, yaml

    loaded = load_preset(preset)
    source = str(resolve_preset_path(preset))
    chosen = name or loaded.name
    manifests = k8s_render.render(loaded, source, name=chosen, image=image)
    if output is None:
        typer.echo(k8s_render.as_stream(manifests, loaded, chosen), nl=False)
        return
    for path in k8s_render.write_tree(manifests, loaded, chosen, output):
        typer.echo(f"wrote {path}", err=True)
    typer.echo(f"Next: create the Secret(s) (`fluxdeploy k8s secret --preset {preset} --name "
               f"{chosen}`), then `kubectl apply -f {output}`.", err=True)


@k8s_app.command("secret")
def secret(preset: str = PresetOpt, name: str | None = NameOpt) -> None:
    """Print the `kubectl create secret` line(s); each reads its secret from your shell's
    environment when you run it (no secret is printed)."""
    from intelligensi_deploy.k8s import common  # lazy: pydantic
    from intelligensi_deploy.k8s.secret_lines import secret_lines  # lazy: pydantic
    from intelligensi_deploy.presets import load_preset  # lazy: pydantic, yaml

    loaded = load_preset(preset)
    for line in secret_lines(loaded, common.check_name(name or loaded.name)):
        typer.echo(line)


@k8s_app.command("diagnose")
def diagnose(
    file: str = typer.Argument("-", help="Saved `kubectl describe pod` and/or `kubectl logs` "
                               "output (`-`: stdin, e.g. piped from kubectl)."),
    as_json: bool = typer.Option(False, "--json", help="Findings as JSON."),
) -> None:
    """Diagnose a pod from kubectl's output: Kubernetes' own findings (image pull, GPU
    scheduling, OOMKilled, startup probe, missing Secret) and the server's log findings."""
    import json  # lazy: start-up of --help
    import sys  # lazy: start-up of --help

    from intelligensi_deploy.doctor.report import (  # lazy: rich
        diagnose_exit_code,
        findings_json,
        print_rich,
        render_findings,
    )
    from intelligensi_deploy.k8s.diagnose import k8s_diagnose  # lazy: only when it runs

    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(errors="replace")
    except OSError as exc:
        typer.echo(f"k8s diagnose: cannot read {file}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    findings = k8s_diagnose(text)
    if as_json:
        typer.echo(json.dumps(findings_json(findings), indent=2))
    else:
        print_rich(render_findings(findings))
    raise typer.Exit(diagnose_exit_code(findings))
