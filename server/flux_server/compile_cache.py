"""Compiled graphs that outlive the container: torch.compile's caches on the HF cache's volume.

Inductor keeps what it compiled (the FX graph cache, the AOTAutograd cache, Triton's kernels)
in TORCHINDUCTOR_CACHE_DIR and TRITON_CACHE_DIR. In a container they default to /tmp, lost
with it, so a container replaced by `up --force` or a new image compiles every warm size
again. Pointed at FLUX_COMPILE_CACHE_DIR (default: $HF_HOME/compile-cache, on the same volume
or Lambda file system as the weights), a later container loads them instead.

One folder per key: the GPU's name, torch's version and the speed plan's options, so that an
A100 never loads an H100's kernels and a change of options compiles afresh. The warm-up then
says whether it loaded the graphs or compiled them (`/ready` progress
`compile_cache_hits` / `compile_cache_misses`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

ROOT_VAR = "FLUX_COMPILE_CACHE_DIR"


def cache_root(env: Mapping[str, str]) -> Path:
    """FLUX_COMPILE_CACHE_DIR, else compile-cache/ beside the HF cache."""
    explicit = env.get(ROOT_VAR, "").strip()
    if explicit:
        return Path(explicit)
    return Path(env.get("HF_HOME", "").strip() or "/data/hf") / "compile-cache"


def cache_key(device_name: str, torch_version: str, options: Mapping[str, Any]) -> str:
    """`nvidia-a100-sxm4-80gb-torch2.13.0-3f2a91c0d4`: readable, and distinct for any other
    GPU, torch or speed option."""
    slug = re.sub(r"[^a-z0-9]+", "-", device_name.lower()).strip("-") or "cpu"
    digest = hashlib.sha256(json.dumps(dict(options), sort_keys=True, default=str).encode()
                            ).hexdigest()[:10]
    return f"{slug}-torch{torch_version.split('+')[0]}-{digest}"


def use_cache(root: Path, key: str, env: MutableMapping[str, str] = os.environ) -> Path:
    """Point Inductor's and Triton's caches at root/key (before the first compile)."""
    folder = root / key
    (folder / "inductor").mkdir(parents=True, exist_ok=True)
    env["TORCHINDUCTOR_CACHE_DIR"] = str(folder / "inductor")
    env["TRITON_CACHE_DIR"] = str(folder / "triton")
    env["TORCHINDUCTOR_FX_GRAPH_CACHE"] = "1"
    env["TORCHINDUCTOR_AUTOGRAD_CACHE"] = "1"
    return folder


def cache_counts() -> tuple[int, int]:
    """(hits, misses) of Inductor's FX graph cache in this process so far."""
    if "torch._dynamo" not in sys.modules:
        return 0, 0
    from torch._dynamo.utils import counters  # lazy: only after torch.compile ran

    inductor = counters["inductor"]
    return int(inductor.get("fxgraph_cache_hit", 0)), int(inductor.get("fxgraph_cache_miss", 0))


def describe(hits: int, misses: int) -> str:
    """What the warm-up did with the cache, for the log and the CLI's timeline."""
    if hits and not misses:
        return f"from cache ({hits} graphs loaded)"
    if misses and not hits:
        return f"compiled ({misses} graphs; cached for the next container)"
    if hits or misses:
        return f"partly from cache ({hits} loaded, {misses} compiled)"
    return "nothing compiled"
