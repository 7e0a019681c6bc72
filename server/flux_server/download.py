"""Download a FLUX repository from the Hub into HF_HOME, reporting bytes as they arrive."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from flux_server.cache_check import (
    BrokenFile,
    CacheCorrupt,
    broken_files,
    discard,
    incomplete_downloads,
)

log = logging.getLogger("flux_server.download")

# The diffusers layout only: every component lives in a subfolder; the single-file
# checkpoints at the top of the FLUX repos (flux1-*.safetensors, ae.safetensors) are skipped.
ALLOW_PATTERNS = ["model_index.json", "*/*"]
IGNORE_PATTERNS = ["*.bin", "*.pt", "*.pth", "*.ckpt", "*.msgpack", "*.onnx", "*.onnx_data",
                   "*.h5", "*.gguf", "*.md"]

ProgressCallback = Callable[[int, int | None], None]


class _Sink:
    def write(self, _text: str) -> None:
        pass

    def flush(self) -> None:
        pass


def progress_class(report: ProgressCallback) -> type[tqdm]:
    """A silent tqdm class that reports the snapshot's (bytes_done, bytes_total)."""

    class _ByteProgress(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            kwargs["file"] = _Sink()
            kwargs["disable"] = False
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1):
            result = super().update(n)
            if self.unit == "B" and str(self.desc).startswith("Reconstruct"):
                report(int(self.n), int(self.total) if self.total else None)
            return result

    return _ByteProgress


def download_model(repo_id: str, token: str | None, report: ProgressCallback) -> str:
    """snapshot_download the diffusers files of `repo_id`; return the local folder."""
    from huggingface_hub import snapshot_download  # lazy: only when a hub model downloads

    return snapshot_download(
        repo_id,
        token=token or None,  # None: huggingface_hub may use a token stored in HF_HOME
        allow_patterns=ALLOW_PATTERNS,
        ignore_patterns=IGNORE_PATTERNS,
        tqdm_class=progress_class(report),
    )


def repo_cache_folder(repo_id: str) -> Path:
    """The repo's folder in the HF hub cache (blobs/, snapshots/), where downloads land."""
    from huggingface_hub import constants  # lazy: only when a hub model downloads

    return Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"


def download_verified(repo_id: str, token: str | None, report: ProgressCallback) -> str:
    """download_model, then every safetensors file checked against its header: a broken one
    (truncated, an LFS pointer) is removed and downloaded again, once. Each is logged as a
    `cache-corrupt:` line naming the file; CacheCorrupt when the second download does not
    mend it. An interrupted earlier download's `.incomplete` files are named as it resumes."""
    partial = incomplete_downloads(repo_cache_folder(repo_id))
    if partial:
        log.warning("cache-corrupt: an interrupted download left %d .incomplete file(s) in "
                    "%s: %s; resuming them", len(partial), partial[0].parent,
                    ", ".join(f"{p.name} ({p.stat().st_size} bytes)" for p in partial))
    folder = download_model(repo_id, token, report)
    broken = broken_files(folder)
    if not broken:
        return folder
    for item in broken:
        log.warning("cache-corrupt: %s in %s; downloading it again", item.line(), folder)
        discard(folder, item)
    folder = download_model(repo_id, token, report)
    still = broken_files(folder)
    if still:
        raise _corrupt("the HF cache", still, folder,
                       "delete them (`fluxdeploy cache clear`, or the model's folder under "
                       "HF_HOME) and start again; if they come back broken, the Hub copy or "
                       "the disk is at fault.")
    log.info("cache: %d broken file(s) downloaded again: %s", len(broken),
             ", ".join(item.path for item in broken))
    return folder


def check_local_model(folder: str) -> None:
    """CacheCorrupt naming every broken safetensors file of a local model folder (nothing to
    download it again from)."""
    broken = broken_files(folder)
    if broken:
        raise _corrupt("the model folder", broken, folder,
                       "copy the model again (a folder cloned without git-lfs holds pointers: "
                       "run `git lfs pull` in it), or use its hub id so that the server "
                       "downloads it.")


def _corrupt(where: str, broken: list[BrokenFile], folder: str, hint: str) -> CacheCorrupt:
    """CacheCorrupt naming every broken file of `folder` (in `where`), with `hint`."""
    return CacheCorrupt(f"broken file(s) in {where}: " + "; ".join(b.line() for b in broken)
                        + f" (in {folder})", hint)
