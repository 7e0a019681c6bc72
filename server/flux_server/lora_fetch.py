"""A LoRA's weights, fetched without holding up generations: a hub repo is listed, its one
`.safetensors` file downloaded with a size limit (FLUX_LORA_MAX_BYTES) and a time limit
(FLUX_LORA_TIMEOUT), and the file read with safetensors (never pickle). Concurrent applies of
the same source share one download. Nothing here touches the pipeline."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx

from flux_server.config import Settings
from flux_server.lora_source import (
    HubSource,
    LoraProblem,
    check_weight_name,
    choose_weights,
    classify,
    local_weights,
    too_large,
)
from flux_server.redact import redact

log = logging.getLogger("flux_server.lora")
MAX_READ_WAIT_S = 30.0  # the longest one read may stall before the download is given up


def hub_problem(exc: BaseException, repo: str, token: str | None) -> LoraProblem:
    """The hub's refusal or a network failure, as a 400 naming the repo and the fix."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    message = redact(f"{type(exc).__name__}: {exc}", [token])[:1000]
    if "GatedRepoError" in names:
        return LoraProblem(400, "LoraGated", message, f"{repo} is gated: accept its licence on "
                           "the Hub and set HF_TOKEN to a token with access")
    if "RepositoryNotFoundError" in names:
        return LoraProblem(400, "LoraNotFound", message, f"no hub repository {repo}: check the "
                           "spelling; a private one needs HF_TOKEN")
    if "OfflineModeIsEnabled" in names or isinstance(exc, httpx.TransportError):
        return LoraProblem(400, "HubUnreachable", message, "the Hugging Face Hub could not be "
                           "reached (HF_HUB_OFFLINE, HF_ENDPOINT, network): put the LoRA "
                           "under FLUX_LORA_DIR instead")
    return LoraProblem(400, "LoraDownloadFailed", message, "check the hub id and weight_name")


def timed_out(repo: str, seconds: float) -> LoraProblem:
    return LoraProblem(504, "LoraTimeout", f"downloading {repo} took longer than "
                       f"FLUX_LORA_TIMEOUT={seconds:g}s; generations were not held up",
                       "raise FLUX_LORA_TIMEOUT, or put the LoRA under FLUX_LORA_DIR")


class LoraFetcher:
    """Resolves a source to a local `.safetensors` file (downloading hub files into
    HF_HOME/flux-loras) and reads it; `downloads` counts the downloads actually made."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.downloads = 0
        self._inflight: dict[tuple[str, str | None], Future] = {}
        self._lock = threading.Lock()

    def fetch(self, source: str, weight_name: str | None, token: str | None) -> str:
        """The local weight file for `source` (InputError or LoraProblem when refused)."""
        settings = self.settings
        where = classify(source, settings.lora_dir, settings.lora_allow)
        if not isinstance(where, HubSource):
            return local_weights(where, weight_name, settings.lora_dir, settings.lora_max_bytes)
        check_weight_name(weight_name)
        key = (where.repo, weight_name)
        with self._lock:
            shared = self._inflight.get(key)
            if shared is None:
                future: Future = Future()
                self._inflight[key] = future
        if shared is not None:
            log.info("lora download of %s already under way: sharing it", where.repo)
            return shared.result()
        try:
            path = self._from_hub(where.repo, weight_name, token)
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(path)
            return path
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    def load(self, source: str, weight_name: str | None, token: str | None) -> dict[str, Any]:
        """The LoRA's tensors, read from its safetensors file (no pickle can run)."""
        path = self.fetch(source, weight_name, token)
        from safetensors.torch import load_file  # lazy: torch loads with the model

        try:
            return load_file(path, device="cpu")
        except Exception as exc:  # noqa: BLE001 - any failure: answered with its name
            raise LoraProblem(400, "LoraUnreadable", f"{type(exc).__name__}: {exc}"[:1000],
                              "the file is not valid safetensors: save the LoRA again with "
                              "safetensors") from None

    def _from_hub(self, repo: str, weight_name: str | None, token: str | None) -> str:
        from huggingface_hub import HfApi  # lazy: with the model's libraries
        from huggingface_hub.hf_api import RepoFile  # lazy: as above

        deadline = time.monotonic() + self.settings.lora_timeout
        try:
            entries = {e.path: e for e in HfApi().list_repo_tree(repo, recursive=True,
                                                                 token=token or None)
                       if isinstance(e, RepoFile)}
        except Exception as exc:  # noqa: BLE001 - any failure: answered with its name
            raise hub_problem(exc, repo, token) from None
        name = choose_weights(sorted(entries), weight_name, f"the hub repo {repo}")
        entry = entries[name]
        if entry.size > self.settings.lora_max_bytes:
            raise too_large(entry.size, self.settings.lora_max_bytes)
        blob = entry.lfs.sha256 if entry.lfs else entry.blob_id
        target = _cache_dir() / repo.replace("/", "--") / blob / Path(name).name
        if target.is_file() and target.stat().st_size == entry.size:
            return str(target)
        if time.monotonic() > deadline:
            raise timed_out(repo, self.settings.lora_timeout)
        self.downloads += 1
        started = time.monotonic()
        self._download(repo, name, token, target, deadline)
        log.info("lora downloaded: %s/%s %d bytes in %.2fs", repo, name, entry.size,
                 time.monotonic() - started)
        return str(target)

    def _download(self, repo: str, name: str, token: str | None, target: Path,
                  deadline: float) -> None:
        """Stream one file into `target`, stopping at the size or the time limit."""
        from huggingface_hub import hf_hub_url  # lazy: with the model's libraries
        from huggingface_hub.utils import build_hf_headers  # lazy: as above

        limit, seconds = self.settings.lora_max_bytes, self.settings.lora_timeout
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
        timeout = httpx.Timeout(min(MAX_READ_WAIT_S, seconds))
        try:
            with httpx.Client(follow_redirects=True, timeout=timeout) as client, \
                    client.stream("GET", hf_hub_url(repo, name),
                                  headers=build_hf_headers(token=token or None)) as response:
                if response.status_code != 200:
                    raise LoraProblem(400, "LoraDownloadFailed", f"the hub answered "
                                      f"{response.status_code} for {repo}/{name}",
                                      "check the hub id, weight_name and HF_TOKEN")
                declared = int(response.headers.get("content-length") or 0)
                if declared > limit:
                    raise too_large(declared, limit)
                done = 0
                with open(partial, "wb") as out:
                    for chunk in response.iter_bytes():  # as it arrives: no buffering
                        done += len(chunk)
                        if done > limit:
                            raise too_large(done, limit)
                        if time.monotonic() > deadline:
                            raise timed_out(repo, seconds)
                        out.write(chunk)
            os.replace(partial, target)
        except httpx.TimeoutException:
            raise timed_out(repo, seconds) from None
        except httpx.TransportError as exc:
            raise hub_problem(exc, repo, token) from None
        finally:
            partial.unlink(missing_ok=True)


def _cache_dir() -> Path:
    from huggingface_hub import constants  # lazy: with the model's libraries

    return Path(constants.HF_HOME) / "flux-loras"
