"""A rendered object and the file it goes in (shared by render.py and the kinds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """Safe YAML with multi-line strings (serveConfigV2) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(obj: object) -> str:
    """Stable YAML: sorted keys, block style."""
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=True, default_flow_style=False)


@dataclass(frozen=True)
class Manifest:
    """One rendered object and the file it goes in."""

    filename: str
    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    def text(self, header: str) -> str:
        return header + dump(self.obj)
