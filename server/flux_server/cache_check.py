"""Is the model on disk whole? Safetensors files checked against their own headers, and the
`.incomplete` files an interrupted download leaves in the HF cache. Stdlib only; reads files,
never the network.

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON naming each
tensor's byte range, then the data: a whole file is exactly 8 + N + the largest range end.
A truncated one is what safetensors reports as `incomplete metadata, file not fully covered`
(cut in the data), `invalid header length` / `header too small` (cut in the header) or
`header too large` (not safetensors at all, e.g. a Git LFS pointer).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_HEADER = 100_000_000  # safetensors' own limit
LFS_POINTER = b"version https://git-lfs"


class CacheCorrupt(RuntimeError):
    """Files of the model on disk are broken and could not be replaced."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class BrokenFile:
    """One broken file: its path relative to the model folder, and what is wrong with it."""

    path: str
    problem: str

    def line(self) -> str:
        return f"{self.path}: {self.problem}"


def safetensors_problem(path: Path) -> str | None:
    """What is wrong with the safetensors file at `path`, or None when it is whole."""
    size = path.stat().st_size
    with path.open("rb") as f:
        start = f.read(len(LFS_POINTER))
        if start == LFS_POINTER:
            return "a Git LFS pointer, not the weights (header too large)"
        if len(start) < 8:
            return f"truncated: {size} bytes, shorter than the 8-byte header length"
        length = int.from_bytes(start[:8], "little")
        f.seek(8)
        if length > MAX_HEADER:
            return f"not a safetensors file: header length {length} (header too large)"
        if 8 + length > size:
            return f"truncated in its header: {size} of at least {8 + length} bytes"
        try:
            header = json.loads(f.read(length))
        except ValueError:
            return "corrupt header: not valid JSON"
    ends = [entry["data_offsets"][1] for key, entry in header.items()
            if key != "__metadata__" and isinstance(entry, dict) and "data_offsets" in entry]
    expected = 8 + length + max(ends, default=0)
    if size < expected:
        return f"truncated: {size} of {expected} bytes"
    if size > expected:
        return f"{size} bytes where its header describes {expected}"
    return None


def broken_files(folder: str | os.PathLike[str]) -> list[BrokenFile]:
    """Every broken or missing safetensors file under `folder` (a snapshot or a local model)."""
    root = Path(folder)
    found = []
    for path in sorted(root.rglob("*.safetensors")):
        relative = str(path.relative_to(root))
        if not path.exists():  # a snapshot link whose blob is gone
            found.append(BrokenFile(relative, "missing: the link's blob is gone"))
            continue
        problem = safetensors_problem(path)
        if problem:
            found.append(BrokenFile(relative, problem))
    return found


def incomplete_downloads(repo_cache: Path) -> list[Path]:
    """The `.incomplete` blobs an interrupted download left in a repo's cache folder."""
    return sorted((repo_cache / "blobs").glob("*.incomplete"))


def discard(folder: str | os.PathLike[str], broken: BrokenFile) -> None:
    """Remove a broken file of a snapshot (its blob and its link) so the Hub fills it again."""
    link = Path(folder) / broken.path
    blob = link.resolve()
    for path in (blob, link):
        path.unlink(missing_ok=True)


COMPILE_CACHE = "compile-cache"  # beside hub/ under HF_HOME (compile_cache.py)


def scan_cache(hf_home: Path) -> dict[str, Any]:
    """Every model in the hub cache under `hf_home`: its broken safetensors files and the
    `.incomplete` files an interrupted download left, as a JSON-ready report."""
    models = []
    for repo_cache in sorted((hf_home / "hub").glob("models--*")):
        snapshots = sorted((repo_cache / "snapshots").glob("*"))
        broken = [{"snapshot": snap.name, "path": b.path, "problem": b.problem}
                  for snap in snapshots for b in broken_files(snap)]
        incomplete = [{"path": str(p.relative_to(repo_cache)), "bytes": p.stat().st_size}
                      for p in incomplete_downloads(repo_cache)]
        models.append({"repo": repo_cache.name.removeprefix("models--").replace("--", "/"),
                       "folder": str(repo_cache.relative_to(hf_home)),
                       "snapshots": len(snapshots), "broken": broken,
                       "incomplete": incomplete})
    compiled = hf_home / COMPILE_CACHE
    return {"hf_home": str(hf_home), "models": models,
            "compile_cache_bytes": sum(p.stat().st_size for p in compiled.rglob("*")
                                       if p.is_file()) if compiled.is_dir() else 0}


def clear_broken(hf_home: Path, report: dict[str, Any], compiled: bool) -> list[str]:
    """Remove what `report` found broken (blob and link; .incomplete files) and, with
    `compiled`, the compile cache; the paths removed, relative to `hf_home`."""
    removed = []
    for model in report["models"]:
        repo_cache = hf_home / model["folder"]
        for item in model["broken"]:
            discard(repo_cache / "snapshots" / item["snapshot"],
                    BrokenFile(item["path"], item["problem"]))
            removed.append(f"{model['folder']}/snapshots/{item['snapshot']}/{item['path']}")
        for item in model["incomplete"]:
            (repo_cache / item["path"]).unlink(missing_ok=True)
            removed.append(f"{model['folder']}/{item['path']}")
    if compiled and (hf_home / COMPILE_CACHE).is_dir():
        shutil.rmtree(hf_home / COMPILE_CACHE)
        removed.append(COMPILE_CACHE)
    return removed


def main(argv: list[str] | None = None) -> int:
    """`python -m flux_server.cache_check HF_HOME [--clear] [--compiled]`: the report as JSON
    on stdout (what `fluxdeploy cache verify / clear` runs in the server's image)."""
    parser = argparse.ArgumentParser(prog="python -m flux_server.cache_check")
    parser.add_argument("hf_home", type=Path)
    parser.add_argument("--clear", action="store_true", help="remove what is broken")
    parser.add_argument("--compiled", action="store_true", help="with --clear: also the "
                        "compile cache")
    args = parser.parse_args(argv)
    report = scan_cache(args.hf_home)
    report["removed"] = clear_broken(args.hf_home, report, args.compiled) if args.clear else []
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
