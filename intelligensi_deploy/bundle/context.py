"""The server's build context: which files, their content hash, and the tar `docker build -` reads.

The context is the server exactly as it ships with this CLI: package data inside the wheel
(`intelligensi_deploy/_server/`, copied there by setup.py at build time), or the repository's
`server/` folder in a checkout. `FLUXDEPLOY_SERVER_CONTEXT` points elsewhere (tests, forks).
Only the files the Dockerfile uses are included; `.build-extra/` is never taken from the
context folder itself, only from the `extra_dir` the build settings name.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from intelligensi_deploy.errors import FluxdeployError

IMAGE_REPOSITORY = "fluxdeploy/flux-server"
CONTEXT_ENV = "FLUXDEPLOY_SERVER_CONTEXT"
PACKAGED = Path(__file__).resolve().parents[1] / "_server"
CHECKOUT = Path(__file__).resolve().parents[2] / "server"
# What server/Dockerfile COPYs, plus the Dockerfile and .dockerignore themselves.
TOP_FILES = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md")
PACKAGE_DIR = "flux_server"
EXTRA_DIR = ".build-extra"
_SKIP_PARTS = ("__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache")
_SKIP_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class ContextFile:
    """One file of the context: its name in the tar and where it is on this machine."""

    arcname: str
    path: Path


def find_context_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The folder holding server/Dockerfile: the override, the packaged copy, or the checkout."""
    override = environ.get(CONTEXT_ENV)
    candidates = [Path(override).expanduser()] if override else [PACKAGED, CHECKOUT]
    for folder in candidates:
        if (folder / "Dockerfile").is_file() and (folder / PACKAGE_DIR).is_dir():
            return folder
    where = ", ".join(str(c) for c in candidates)
    raise FluxdeployError(
        f"The bundled server's build context is missing (looked in {where}).",
        fix=(f"Unset {CONTEXT_ENV} or point it at a folder with Dockerfile and flux_server/."
             if override else "Reinstall fluxdeploy (the wheel carries the server), or use a "
             "preset with a registry image."),
        doc="image-build",
    )


def _wanted(rel: Path) -> bool:
    return not any(p in _SKIP_PARTS or p.endswith(".egg-info") for p in rel.parts) \
        and rel.suffix not in _SKIP_SUFFIXES


def context_files(context_dir: Path, extra_dir: str | None = None) -> list[ContextFile]:
    """The files sent to `docker build`, sorted by name (so the hash is stable)."""
    files = [ContextFile(name, context_dir / name) for name in TOP_FILES
             if (context_dir / name).is_file()]
    package = context_dir / PACKAGE_DIR
    for path in package.rglob("*"):
        rel = path.relative_to(context_dir)
        if path.is_file() and _wanted(rel):
            files.append(ContextFile(rel.as_posix(), path))
    if extra_dir:
        extra = Path(extra_dir).expanduser()
        if not extra.is_dir():
            raise FluxdeployError(
                f"The build's extra_dir {extra} is not a folder.",
                fix="Point build.extra_dir (or FLUXDEPLOY_BUILD_EXTRA_DIR) at a folder holding "
                "ca-certificates.crt, wheels/ or constraints.txt, or unset it.",
                doc="image-build",
            )
        for path in extra.rglob("*"):
            if path.is_file():
                files.append(ContextFile(f"{EXTRA_DIR}/{path.relative_to(extra).as_posix()}",
                                         path.resolve()))
    return sorted(files, key=lambda f: f.arcname)


def context_hash(files: Iterable[ContextFile], build_args: Mapping[str, str],
                 cache: DigestCache | None = None) -> str:
    """sha256 over every file's name, mode bit and bytes, and the build arguments (large
    files' digests come from `cache` while their stat is unchanged)."""
    cache = cache or DigestCache()
    digest = hashlib.sha256()
    for item in files:
        executable = os.access(item.path, os.X_OK)
        digest.update(f"{item.arcname}\0{int(executable)}\0".encode())
        digest.update(bytes.fromhex(cache.digest(item.path)))
    digest.update(json.dumps(sorted(build_args.items())).encode())
    cache.save()
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB pieces."""
    file_digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            file_digest.update(chunk)
    return file_digest.hexdigest()


class DigestCache:
    """sha256 of large files (a torch wheel in `extra_dir` is 190 MB: about a second to hash)
    remembered by path, size, mtime and inode, as git's index does: a file whose stat is
    unchanged is not read again. Small files are always hashed. The cache lives in
    `$XDG_CACHE_HOME/fluxdeploy/file-digests.json` (no secrets: paths and digests only); an
    unreadable cache is ignored and rewritten."""

    LARGE = 8 << 20

    def __init__(self, path: Path | None = None) -> None:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        self.path = path or root / "fluxdeploy" / "file-digests.json"
        try:
            self.entries: dict[str, list[Any]] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.entries = {}
        self.changed = False

    def digest(self, path: Path) -> str:
        stat = path.stat()
        if stat.st_size < self.LARGE:
            return file_sha256(path)
        key, seen = str(path.resolve()), [stat.st_size, stat.st_mtime_ns, stat.st_ino]
        entry = self.entries.get(key)
        if (isinstance(entry, list) and len(entry) == 4 and entry[:3] == seen
                and isinstance(entry[3], str)):
            return entry[3]
        value = file_sha256(path)
        self.entries[key] = [*seen, value]
        self.changed = True
        return value

    def save(self) -> None:
        """Write the cache atomically if it changed; a read-only home is not an error."""
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".tmp.{os.getpid()}")
            tmp.write_text(json.dumps(self.entries), encoding="utf-8")
            os.replace(tmp, self.path)
            self.changed = False
        except OSError:
            pass


def image_tag(full_hash: str) -> str:
    """`fluxdeploy/flux-server:<hash12>`."""
    return f"{IMAGE_REPOSITORY}:{full_hash[:12]}"


def write_tar(files: Iterable[ContextFile], out: IO[bytes]) -> None:
    """The context as an uncompressed tar with fixed owners and times (reproducible)."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for item in files:
            info = tarfile.TarInfo(item.arcname)
            stat = item.path.stat()
            info.size = stat.st_size
            info.mode = 0o755 if os.access(item.path, os.X_OK) else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with open(item.path, "rb") as handle:
                tar.addfile(info, handle)


def tar_bytes(files: Iterable[ContextFile]) -> bytes:
    """The tar in memory (tests and small contexts)."""
    buffer = io.BytesIO()
    write_tar(files, buffer)
    return buffer.getvalue()
