"""cli_params: typer parameters coerced without pydantic, with the same values and errors."""

from __future__ import annotations

import enum
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main

from intelligensi_deploy import cli_params


class Color(str, enum.Enum):
    red = "red"


OUT_OPT = typer.Option("out.png", "--out")
COLOR_OPT = typer.Option(Color.red, "--color")


def _app(seen: dict[str, Any]) -> typer.Typer:
    app = typer.Typer(add_completion=False)

    @app.command()
    def run(
        name: str = typer.Argument(...),
        count: int = typer.Option(3, "--count"),
        tail: int | None = typer.Option(None, "--tail"),
        ratio: float = typer.Option(1.5, "--ratio"),
        out: Path = OUT_OPT,
        loud: bool = typer.Option(False, "--loud"),
        color: Color = COLOR_OPT,
        bounded: int = typer.Option(5, "--bounded", min=1, max=9),
    ) -> None:
        seen.update(name=name, count=count, tail=tail, ratio=ratio, out=out, loud=loud,
                    color=color, bounded=bounded)

    @app.command()
    def other() -> None:
        pass

    return app


def _run(args: list[str]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    typer.main.get_command(_app(seen)).main(["run", *args], standalone_mode=False)
    return seen


def test_values_have_the_annotated_types() -> None:
    assert cli_params.install() is True
    seen = _run(["fox", "--count", "7", "--ratio", "0.25", "--out", "a/b.png", "--loud",
                 "--bounded", "2"])
    assert seen == {"name": "fox", "count": 7, "tail": None, "ratio": 0.25,
                    "out": Path("a/b.png"), "loud": True, "color": Color.red, "bounded": 2}
    defaults = _run(["fox"])
    assert defaults["count"] == 3 and defaults["out"] == Path("out.png")
    assert defaults["loud"] is False and defaults["ratio"] == 1.5


@pytest.mark.parametrize(("args", "words"), [
    (["--count", "abc"], "'abc' is not a valid integer"),
    (["--count", "1.5"], "'1.5' is not a valid integer"),
    (["--ratio", "fast"], "'fast' is not a valid float"),
])
def test_bad_values_are_usage_errors_naming_the_value(args: list[str], words: str) -> None:
    cli_params.install()
    with pytest.raises(Exception) as caught:
        _run(["fox", *args])
    assert words in caught.value.format_message()  # type: ignore[attr-defined]
    assert caught.value.exit_code == 2  # type: ignore[attr-defined]


def test_other_types_and_ranges_keep_typers_own_coercion() -> None:
    cli_params.install()
    with pytest.raises(Exception) as caught:
        _run(["fox", "--bounded", "12"])  # min/max: typer's pydantic path checks the range
    assert caught.value.exit_code == 2  # type: ignore[attr-defined]
    assert "less than or equal to 9" in caught.value.format_message()  # type: ignore[attr-defined]
    assert _run(["fox", "--color", "red"])["color"] is Color.red


def test_light_converter_declines_what_it_does_not_cover() -> None:
    from typer._coercion import resolve_type_descriptor
    from typer.models import OptionInfo

    def descriptor(annotation: Any, **info: Any) -> Any:
        return resolve_type_descriptor(annotation, OptionInfo(**info))

    assert cli_params.light_converter(descriptor(int)) is not None
    assert cli_params.light_converter(descriptor(Path)) is not None
    assert cli_params.light_converter(descriptor(int, min=1)) is None
    assert cli_params.light_converter(descriptor(Path, exists=True)) is None
    assert cli_params.light_converter(descriptor(Color)) is None
    assert cli_params.light_converter(descriptor(list[str])) is None


def test_the_cli_reports_a_bad_integer_like_click() -> None:
    out = subprocess.run([sys.executable, "-m", "intelligensi_deploy", "logs", "--tail", "x"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2
    assert "Invalid value for '--tail': 'x' is not a valid integer." in out.stderr
