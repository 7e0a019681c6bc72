"""`fluxdeploy presets list|show` and `fluxdeploy image build`: the two sub-command groups
of the CLI (cli.py adds them). As in cli.py, heavy modules are imported inside commands."""

from __future__ import annotations

import typer

from intelligensi_deploy.preset_paths import SHIPPED_PRESETS_DIR, preset_files
from intelligensi_deploy.signals import interruptible

presets_app = typer.Typer(help="List and show presets.", no_args_is_help=True,
                          rich_markup_mode=None)
image_app = typer.Typer(help="The bundled server image: build it on the local Docker engine, "
                        "and push it to your registry.", no_args_is_help=True,
                        rich_markup_mode=None)
BuildOpt = typer.Option(None, "--build", "-b", metavar="KEY=VALUE",
                        help="Override the preset's build section (image: bundled): base_image, "
                        "torch, torch_index, extras, extra_dir. Repeatable. Beats "
                        "FLUXDEPLOY_BUILD_<KEY>, which beats the preset.")


@presets_app.command("list")
def presets_list() -> None:
    """Shipped and user presets."""
    for preset_name, path in sorted(preset_files().items()):
        origin = "shipped" if path.parent == SHIPPED_PRESETS_DIR else str(path)
        description = ""
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("description:"):
                description = line.split(":", 1)[1].strip()
        typer.echo(f"{preset_name:18} {description}  [{origin}]")


@presets_app.command("show")
def presets_show(name: str = typer.Argument(..., help="Preset name or path.")) -> None:
    """Validate a preset and print it with every default filled in."""
    import yaml  # lazy: yaml, pydantic: not for `presets list`

    from intelligensi_deploy.bundle.show import image_path_lines  # lazy: pydantic
    from intelligensi_deploy.presets import load_preset  # lazy: pydantic

    preset = load_preset(name)
    typer.echo(yaml.safe_dump(preset.model_dump(by_alias=True, mode="json"), sort_keys=False))
    for line in image_path_lines(preset):
        typer.echo(line)


@image_app.command("build")
def image_build(
    preset: str | None = typer.Option(None, "--preset", "-p", help="Preset whose build "
                                      "section to use (default: the production build: CUDA "
                                      "base, CUDA torch, quant extras)."),
    build: list[str] | None = BuildOpt,
    push: str | None = typer.Option(None, "--push", metavar="REF", help="Also tag the image as "
                                    "REF (e.g. ghcr.io/you/flux-server:1.0) and push it; logs "
                                    "in with GHCR_TOKEN on stdin when it is set."),
    platform: str | None = typer.Option(None, "--platform", help="e.g. linux/arm64 (needs "
                                        "an engine that builds for it)."),
) -> None:
    """Build the bundled server image on the local engine, with the same context and tag as
    `up` (fluxdeploy/flux-server:<hash12>); optionally push it."""
    from intelligensi_deploy.bundle.settings import parse_flags  # lazy: pydantic
    from intelligensi_deploy.console import ConsoleReporter  # lazy: rich
    from intelligensi_deploy.deploy.publish import build_and_push  # lazy: paramiko, httpx
    from intelligensi_deploy.presets import load_preset  # lazy: pydantic

    ui = ConsoleReporter()
    with interruptible():  # a long build stops on SIGINT/SIGTERM (130/143), engine's too
        tag = build_and_push(load_preset(preset) if preset else None,
                             parse_flags(build or []), ui=ui, push=push, platform=platform)
    typer.echo(tag)
