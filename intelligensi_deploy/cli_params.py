"""Parameter coercion for the CLI without pydantic, so quick commands start quickly.

typer 0.29 coerces every parameter value (the implicit `--help` flag included) through a
pydantic `TypeAdapter` built the first time the parameter is parsed; importing pydantic for
that costs more than importing typer. fluxdeploy's parameters are plain `str`, `int`, `float`,
`bool` and `Path`: `install()` gives those a converter of their own (the same results, and
click's wording for bad values), and leaves every other annotation, range, custom parser or
file type to typer's own pydantic path. On a typer without that machinery it does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}
_PATH_DEFAULTS = {"exists": False, "resolve_path": False, "writable": False, "allow_dash": False,
                  "path_type": None}


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text == "" or text in _FALSE:
        return False
    if text in _TRUE:
        return True
    raise ValueError(value)


def _to_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None:
        raise ValueError(value)
    return str(value)


def _to_int(value: Any) -> int:
    if isinstance(value, (bool, float)):
        raise TypeError(value)
    return int(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError(value)
    return float(value)


def _to_path(value: Any) -> Path:
    if not isinstance(value, (str, Path)):
        raise TypeError(value)
    return Path(value)


# annotation -> (converter, the name click uses for the type in its error message)
_CONVERTERS: dict[Any, tuple[Callable[[Any], Any], str]] = {
    str: (_to_str, "string"),
    int: (_to_int, "integer"),
    float: (_to_float, "float"),
    bool: (_to_bool, "boolean"),
    Path: (_to_path, "path"),
}


def light_converter(descriptor: Any) -> tuple[Callable[[Any], Any], str] | None:
    """The converter for a typer type descriptor, or None where typer's own way is needed."""
    info = descriptor.parameter_info
    entry = _CONVERTERS.get(descriptor.annotation)
    if entry is None or descriptor.file_annotation is not None:
        return None
    if getattr(info, "parser", None) is not None:
        return None
    if descriptor.annotation in (int, float) and (info.min is not None or info.max is not None):
        return None
    if descriptor.annotation is Path and any(
        getattr(info, flag, default) != default for flag, default in _PATH_DEFAULTS.items()
    ):
        return None
    return entry


def install() -> bool:
    """Make typer use the light converters where they apply; True if typer has the hook.

    Idempotent. Affects only this process (the CLI calls it once at import).
    """
    try:
        from typer import core  # lazy: private typer API, guarded by the except below
        from typer._click.exceptions import BadParameter  # lazy: private API, guarded
        from typer._coercion import RuntimeParam  # lazy: private API, guarded
    except ImportError:  # a typer that does not coerce through pydantic
        return False
    parameter_class = getattr(core, "_TyperParameter", None)
    original = getattr(parameter_class, "get_runtime_param", None)
    if parameter_class is None or original is None:
        return False
    if getattr(original, "_fluxdeploy_light", False):
        return True

    @dataclass(frozen=True)
    class LightRuntimeParam(RuntimeParam):
        convert: Callable[[Any], Any] = _to_str
        type_name: str = "string"

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                return self.convert(value)
            except (TypeError, ValueError):
                raise BadParameter(f"{value!r} is not a valid {self.type_name}.",
                                   ctx=ctx, param=param) from None

    def get_runtime_param(self: Any) -> Any:
        if self._runtime_param is None:
            entry = light_converter(self.type_descriptor)
            if entry is not None:
                self._runtime_param = LightRuntimeParam(
                    parameter_info=self.type_descriptor.parameter_info,
                    annotation=self.type_descriptor.annotation,
                    convert=entry[0], type_name=entry[1],
                )
        return original(self)

    # A mark for a second install() to see; mypy allows no new attributes on a function.
    get_runtime_param._fluxdeploy_light = True  # type: ignore[attr-defined]  # the mark
    parameter_class.get_runtime_param = get_runtime_param
    return True
