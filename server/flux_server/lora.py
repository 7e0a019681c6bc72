"""LoRA adapters on the loaded pipeline: apply (hub id or path under FLUX_LORA_DIR, weight),
remove, status. `apply` fetches and reads the weights first, without any lock, and takes the
pipeline lock only for the swap between two generations."""

from __future__ import annotations

import logging
import os
import re
import time
from contextlib import nullcontext
from typing import Any

from flux_server.lora_fetch import LoraFetcher
from flux_server.schemas import InputError

log = logging.getLogger("flux_server.lora")


class LoraError(Exception):
    """Loading an adapter failed; the pipeline is left as it was."""

    def __init__(self, cause: BaseException, source: str) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause
        self.source = source


def adapter_name_for(source: str) -> str:
    """A valid adapter name derived from a hub id or path."""
    base = os.path.basename(os.path.normpath(source)) or "lora"
    return re.sub(r"[^A-Za-z0-9_]", "_", base)[:64] or "lora"


def unfuse_for_lora(pipe: Any) -> bool:
    """Undo fused QKV projections (speed option) before a LoRA is loaded: adapters target
    to_q/to_k/to_v, which a fused attention no longer calls. True when it unfused."""
    transformer = getattr(pipe, "transformer", None)
    if transformer is None or not any(getattr(m, "fused_projections", False)
                                      for m in transformer.modules()):
        return False
    transformer.unfuse_qkv_projections()
    log.info("fused QKV projections undone: LoRA adapters apply to to_q/to_k/to_v")
    return True


class LoraManager:
    """Which adapters are active, with their sources and weights."""

    def __init__(self, fetcher: LoraFetcher | None = None) -> None:
        self.adapters: dict[str, dict[str, Any]] = {}
        self.fetcher = fetcher

    def status(self) -> dict:
        return {"active": bool(self.adapters),
                "adapters": [{"name": k, **v} for k, v in self.adapters.items()]}

    def apply(self, pipe: Any, source: str, weight: float, adapter_name: str | None = None,
              weight_name: str | None = None, token: str | None = None,
              queue: Any = None) -> dict:
        """Fetch and read the weights (no lock held: generations go on), then swap them in
        between two generations (`queue.between_jobs()`; no queue: at once)."""
        if self.fetcher is None:
            raise RuntimeError("LoraManager without a fetcher cannot apply a source")
        started = time.monotonic()
        weights = self.fetcher.load(source, weight_name, token)
        fetched = time.monotonic()
        with queue.between_jobs() if queue is not None else nullcontext():
            locked = time.monotonic()
            status = self.swap(pipe, weights, source, weight, adapter_name)
        log.info("lora apply timings: fetch_s=%.3f lock_wait_s=%.3f swap_s=%.3f",
                 fetched - started, locked - fetched, time.monotonic() - locked)
        return status

    def swap(self, pipe: Any, weights: dict[str, Any], source: str, weight: float,
             adapter_name: str | None = None) -> dict:
        """Load `weights` (a LoRA state dict) as adapter `adapter_name` (the caller holds the
        pipeline lock); the pipeline is left as it was when diffusers refuses them."""
        name = adapter_name or adapter_name_for(source)
        if name in self.adapters:
            self._delete(pipe, [name])
        unfuse_for_lora(pipe)
        try:
            pipe.load_lora_weights(weights, adapter_name=name)
            loaded = {n for names in pipe.get_list_adapters().values() for n in names}
            if name not in loaded:  # diffusers skips keys it does not know, silently
                raise ValueError(f"the weights of {source} match no layer of this FLUX "
                                 "pipeline: not a FLUX LoRA")
        except Exception as exc:
            self._delete(pipe, [name], quiet=True)
            self._activate(pipe)
            raise LoraError(exc, source) from exc
        self.adapters[name] = {"source": source, "weight": float(weight)}
        self._activate(pipe)
        log.info("lora applied: name=%s source=%s weight=%s", name, source, weight)
        return self.status()

    def remove(self, pipe: Any, adapter_name: str | None = None) -> dict:
        if adapter_name is not None and adapter_name not in self.adapters:
            raise InputError("adapter_name", f"no active adapter named {adapter_name!r}")
        names = [adapter_name] if adapter_name else list(self.adapters)
        self._delete(pipe, names)
        self._activate(pipe)
        log.info("lora removed: %s", ", ".join(names) or "(none active)")
        return self.status()

    def _delete(self, pipe: Any, names: list[str], quiet: bool = False) -> None:
        for name in names:
            self.adapters.pop(name, None)
        if not names:
            return
        try:
            pipe.delete_adapters(names)
        except Exception:
            if not quiet:
                raise

    def _activate(self, pipe: Any) -> None:
        if self.adapters:
            pipe.set_adapters(list(self.adapters),
                              adapter_weights=[a["weight"] for a in self.adapters.values()])
