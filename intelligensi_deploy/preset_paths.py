"""Where presets live, found without parsing them (so `presets list` stays fast)."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from intelligensi_deploy.errors import FluxdeployError

# An installed wheel carries the presets as package data (setup.py); a checkout has presets/.
_PACKAGED_PRESETS = Path(__file__).resolve().parent / "_presets"
SHIPPED_PRESETS_DIR = (_PACKAGED_PRESETS if _PACKAGED_PRESETS.is_dir()
                       else Path(__file__).resolve().parent.parent / "presets")


class PresetError(FluxdeployError):
    """A preset that cannot be found, read or validated."""

    exit_code = 2


def user_presets_dir() -> Path:
    root = os.environ.get("FLUXDEPLOY_CONFIG") or "~/.config/fluxdeploy"
    return Path(root).expanduser() / "presets"


def preset_files() -> dict[str, Path]:
    """Every preset by name; a user preset shadows a shipped one of the same name."""
    found: dict[str, Path] = {}
    for folder in (SHIPPED_PRESETS_DIR, user_presets_dir()):
        if folder.is_dir():
            for path in sorted(folder.glob("*.y*ml")):
                found[path.stem] = path
    return found


def resolve_preset_path(ref: str) -> Path:
    """A preset name or a path to a YAML file -> the file's path."""
    candidate = Path(ref).expanduser()
    if candidate.suffix in (".yaml", ".yml") or os.sep in ref:
        if not candidate.is_file():
            raise PresetError(f"No preset file at {candidate}.", fix="Check the path.")
        return candidate
    files = preset_files()
    if ref not in files:
        close = difflib.get_close_matches(ref, list(files), n=3)
        hint = f"Did you mean {', '.join(close)}? " if close else ""
        raise PresetError(
            f"No preset named {ref!r}.",
            fix=f"{hint}Known presets: {', '.join(sorted(files))}. Put your own in "
            f"{user_presets_dir()} or pass a path to a .yaml file.",
        )
    return files[ref]


def preset_reference(ref: str) -> str:
    """How to find this preset again from anywhere: its name, or its file's absolute path."""
    path = resolve_preset_path(ref)
    return ref if path == preset_files().get(ref) else str(path.resolve())
