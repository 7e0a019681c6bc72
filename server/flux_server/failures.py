"""Turn a loading exception into the `failed` reason: type, message and a hint. Pure."""

from __future__ import annotations

import errno
from collections.abc import Iterator

from flux_server.config import Settings
from flux_server.redact import redact
from flux_server.state import Failure

MAX_MESSAGE = 2000
TOKEN_HINT = "HF_TOKEN (or HUGGINGFACEHUB_API_TOKEN / HUGGINGFACE_TOKEN)"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _hint(exc: BaseException, settings: Settings) -> str | None:
    names, text = _names(exc), str(exc)
    model = settings.model
    if "GatedRepoError" in names:
        if settings.hf_token:
            return (f"{model} is a gated Hugging Face repository and the Hub refused the token "
                    f"in {TOKEN_HINT}: accept the model's licence on its Hub page with that "
                    "account, or use a token that has access.")
        return (f"{model} is a gated Hugging Face repository: accept its licence on the Hub "
                f"and set {TOKEN_HINT} to a token with access (pass it with --env-file).")
    if "RepositoryNotFoundError" in names:
        return (f"no Hub repository {model!r}: check FLUX_MODEL's spelling; a private "
                f"repository needs {TOKEN_HINT}.")
    if "RevisionNotFoundError" in names:
        return f"{model} has no such revision on the Hub."
    if "SettingsError" in names:
        return "fix that environment variable (the table in docs/contract.md lists the values)."
    if "PlanError" in names or "GpuNotVisible" in names or "CacheCorrupt" in names:
        return getattr(exc, "hint", "")
    if "NotImplementedError" in names and settings.device_map:
        return (f"diffusers rejected FLUX_DEVICE_MAP={settings.device_map}: pipelines support "
                "only strategies such as 'balanced'; unset FLUX_DEVICE_MAP to let "
                "FLUX_MEMORY choose.")
    if "OutOfMemoryError" in names or "out of memory" in text.lower():
        return ("out of GPU memory even with the most frugal strategy: use a larger GPU, "
                "FLUX_QUANT=nf4, or FLUX_MEMORY=sequential-offload.")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "no space left on the disk under HF_HOME: free space or mount a larger volume."
    if "LocalEntryNotFoundError" in names or "OfflineModeIsEnabled" in names or \
            "ConnectError" in names or "ConnectionError" in names:
        return ("the Hugging Face Hub could not be reached and the model is not in the cache "
                "under HF_HOME: check the network (HF_ENDPOINT) or pre-fill the cache.")
    if "ModelPathNotFound" in names:
        return ("FLUX_MODEL looks like a local path but nothing is there inside the container: "
                "mount the model directory (-v) or use a hub id such as "
                "black-forest-labs/FLUX.1-schnell.")
    if "model_index.json" in text:
        return ("FLUX_MODEL is not a diffusers pipeline folder (no model_index.json): point it "
                "at a saved FluxPipeline or use a hub id.")
    if isinstance(exc, ImportError):
        return f"a Python package is missing from the image: {exc.name or text}."
    return None


def explain(exc: BaseException, settings: Settings) -> Failure:
    """The failure reason for `exc`: the first exception in its chain that has a known hint."""
    chosen, hint = exc, None
    for link in _chain(exc):
        hint = _hint(link, settings)
        if hint:
            chosen = link
            break
    message = redact(str(chosen), [settings.hf_token])[:MAX_MESSAGE]
    return Failure(type=type(chosen).__name__, message=message,
                   hint=hint or "see the server log for the traceback.")
