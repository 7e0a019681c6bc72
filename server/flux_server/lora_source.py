"""Where a LoRA may come from, decided before anything is read: a hub id (`owner/name`,
allowed by FLUX_LORA_ALLOW) or a file under FLUX_LORA_DIR, and `.safetensors` weights only.

A path outside FLUX_LORA_DIR (symlinks resolved) is refused with one message whether or not
it exists, so the answer tells nothing about the rest of the disk. Pickle weights (`.bin`,
`.pt`, ...) are refused before diffusers sees them, for folders and hub repos alike.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from flux_server.schemas import InputError

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
SAFETENSORS = ".safetensors"
PREFERRED = "pytorch_lora_weights.safetensors"  # what diffusers' save_lora_weights writes
PICKLE = "pickle weights are not accepted; convert to safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
MAX_LISTED = 8


class LoraProblem(Exception):
    """A LoRA that cannot be used (too large, too slow, the hub said no): status and body."""

    def __init__(self, status: int, type_: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.hint = status, type_, message, hint


@dataclass(frozen=True)
class HubSource:
    repo: str


@dataclass(frozen=True)
class LocalSource:
    path: str  # resolved, inside FLUX_LORA_DIR


def refused(lora_dir: str) -> InputError:
    """The one answer for every path outside FLUX_LORA_DIR, existing or not."""
    return InputError("source", f"must be a hub id (owner/name) or a file or folder under "
                      f"FLUX_LORA_DIR={lora_dir}; put the LoRA there (mount it with -v) or "
                      "give its hub id")


def inside(path: str, root: str) -> bool:
    """True when `path` (already resolved) is `root` or below it."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def classify(source: str, lora_dir: str, allow: tuple[str, ...]) -> HubSource | LocalSource:
    """Hub id or path under `lora_dir`; InputError (422 on `source`) for anything else.

    A relative `owner/name` is a hub id; any other relative source is a name inside
    FLUX_LORA_DIR. Nothing on the disk is read but to resolve symlinks."""
    if "\x00" in source or not _encodable(source):  # no file system takes these
        raise refused(lora_dir)
    if not source.startswith(("/", ".", "~")) and HUB_ID.match(source) and ".." not in source:
        if allow and not any(fnmatch.fnmatchcase(source, pattern) or
                             (pattern.endswith("/") and source.startswith(pattern))
                             for pattern in allow):
            raise InputError("source", f"{source} is not in FLUX_LORA_ALLOW "
                             f"({', '.join(allow)}); add it there or use another LoRA")
        return HubSource(source)
    root = os.path.realpath(lora_dir)
    candidate = source if source.startswith("/") else os.path.join(root, source)
    resolved = os.path.realpath(candidate)
    if not inside(resolved, root):
        raise refused(lora_dir)
    return LocalSource(resolved)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


def check_weight_name(weight_name: str | None) -> None:
    """Only `.safetensors` file names; no way out of the folder or repo."""
    if weight_name is None:
        return
    if "\x00" in weight_name or not _encodable(weight_name):
        raise InputError("weight_name", "must be a file name inside the LoRA folder or repo")
    if not weight_name.endswith(SAFETENSORS):
        raise InputError("weight_name", PICKLE)
    if weight_name.startswith("/") or ".." in PurePosixPath(weight_name).parts:
        raise InputError("weight_name", "must be a file name inside the LoRA folder or repo")


def choose_weights(files: list[str], weight_name: str | None, where: str) -> str:
    """The weight file among `files` (relative names): `weight_name`, else
    pytorch_lora_weights.safetensors, else the only `.safetensors` file."""
    check_weight_name(weight_name)
    if weight_name is not None:
        if weight_name not in files:
            raise InputError("weight_name", f"{where} has no file {weight_name}; it has: "
                             f"{_listing(f for f in files if f.endswith(SAFETENSORS))}")
        return weight_name
    weights = sorted(f for f in files if f.endswith(SAFETENSORS))
    preferred = [f for f in weights if PurePosixPath(f).name == PREFERRED]
    if preferred:
        return min(preferred, key=len)
    if len(weights) == 1:
        return weights[0]
    if weights:
        raise InputError("weight_name", f"{where} has several .safetensors files "
                         f"({_listing(weights)}): name one with weight_name")
    if any(f.endswith(PICKLE_SUFFIXES) for f in files):
        raise InputError("source", PICKLE)
    raise InputError("source", f"{where} has no .safetensors weights")


def local_weights(source: LocalSource, weight_name: str | None, lora_dir: str,
                  max_bytes: int) -> str:
    """The `.safetensors` file of a LoRA under FLUX_LORA_DIR (a file, or a folder's file)."""
    try:
        return _local_weights(source, weight_name, lora_dir, max_bytes)
    except OSError as exc:  # inside FLUX_LORA_DIR: saying why is no leak
        raise InputError("source", f"cannot read it under FLUX_LORA_DIR={lora_dir}: "
                         f"{exc.strerror or type(exc).__name__}") from None


def _local_weights(source: LocalSource, weight_name: str | None, lora_dir: str,
                   max_bytes: int) -> str:
    root = os.path.realpath(lora_dir)
    path = source.path
    if os.path.isdir(path):
        files = sorted(name for name in os.listdir(path)
                       if os.path.isfile(os.path.join(path, name)))
        path = os.path.realpath(os.path.join(path, choose_weights(
            files, weight_name, f"the folder {_shown(source.path, root, lora_dir)}")))
        if not inside(path, root):  # the weight file is a symlink out of the folder
            raise refused(lora_dir)
    elif os.path.exists(path):
        if not path.endswith(SAFETENSORS):
            raise InputError("source", PICKLE)
    else:
        raise InputError("source", f"nothing at {_shown(path, root, lora_dir)}: FLUX_LORA_DIR "
                         f"holds {_listing(sorted(os.listdir(root)) if os.path.isdir(root) else [])}")
    if not os.path.isfile(path):
        raise refused(lora_dir)
    size = os.path.getsize(path)
    if size > max_bytes:
        raise too_large(size, max_bytes)
    return path


def too_large(size: int, max_bytes: int) -> LoraProblem:
    return LoraProblem(400, "LoraTooLarge", f"the LoRA weights are {size} bytes, over "
                       f"FLUX_LORA_MAX_BYTES={max_bytes}",
                       "use a smaller LoRA (a lower rank) or raise FLUX_LORA_MAX_BYTES")


def _shown(path: str, root: str, lora_dir: str) -> str:
    """A path as the client may see it: relative to FLUX_LORA_DIR."""
    return os.path.join(lora_dir, os.path.relpath(path, root)) if inside(path, root) else path


def _listing(names) -> str:
    names = list(names)
    shown = ", ".join(names[:MAX_LISTED]) or "nothing"
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")
