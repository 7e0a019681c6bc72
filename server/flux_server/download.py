"""Download a FLUX repository from the Hub into HF_HOME, reporting bytes as they arrive."""

from __future__ import annotations

from collections.abc import Callable

from tqdm.auto import tqdm

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
