"""LoRA adapters on the loaded pipeline: apply (hub id or path, weight), remove, status.
Callers hold the pipeline lock, so no generation runs during a change."""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from flux_server.loader import looks_local
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

    def __init__(self) -> None:
        self.adapters: dict[str, dict[str, Any]] = {}

    def status(self) -> dict:
        return {"active": bool(self.adapters),
                "adapters": [{"name": k, **v} for k, v in self.adapters.items()]}

    def apply(self, pipe: Any, source: str, weight: float, adapter_name: str | None = None,
              weight_name: str | None = None, token: str | None = None) -> dict:
        if looks_local(source) and not os.path.exists(os.path.expanduser(source)):
            raise InputError("source", f"no such file or directory in the container: {source}")
        name = adapter_name or adapter_name_for(source)
        if name in self.adapters:
            self._delete(pipe, [name])
        kwargs: dict[str, Any] = {"adapter_name": name, "use_safetensors": True}  # no pickles
        if weight_name:
            kwargs["weight_name"] = weight_name
        if token and not looks_local(source):
            kwargs["token"] = token
        unfuse_for_lora(pipe)
        try:
            pipe.load_lora_weights(os.path.expanduser(source), **kwargs)
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
