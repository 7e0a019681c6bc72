"""Settings from the container's environment (see docs/contract.md), parsed purely."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from flux_server.speed import (
    CACHE_CHOICES,
    COMPILE_CHOICES,
    SWITCH_CHOICES,
    SpeedRequest,
    parse_sizes,
)

DEFAULT_MODEL = "black-forest-labs/FLUX.1-schnell"
MEMORY_CHOICES = ("auto", "gpu", "balanced", "model-offload", "sequential-offload", "cpu")
QUANT_CHOICES = ("none", "nf4", "int8", "fp8")
DTYPE_CHOICES = ("bf16", "fp16", "fp32")
TOKEN_VARS = ("HF_TOKEN", "HUGGINGFACEHUB_API_TOKEN", "HUGGINGFACE_TOKEN")
TRUE_VALUES = ("1", "true", "yes", "on")
FALSE_VALUES = ("", "0", "false", "no", "off")

Number = TypeVar("Number", int, float)


class SettingsError(ValueError):
    """An environment variable holds a value the server does not accept."""


@dataclass(frozen=True)
class Settings:
    """Everything the server reads from its environment."""

    port: int = 8000
    host: str = "0.0.0.0"
    model: str = DEFAULT_MODEL
    memory: str = "auto"
    quant: str = "none"
    dtype: str | None = None  # None: bf16 on GPU, fp32 on CPU
    device_map: str | None = None
    queue_size: int = 16
    request_timeout: float = 420.0  # FLUX_REQUEST_TIMEOUT: wait + run (the Ray front's bound)
    queue_timeout: float = 120.0  # FLUX_QUEUE_TIMEOUT: longest wait in the queue (then 503)
    run_timeout: float = 300.0  # FLUX_RUN_TIMEOUT: longest run of one generation (then 504)
    max_work: float | None = None  # FLUX_MAX_WORK: megapixel-steps; None: per model (cost.py)
    shutdown_grace_s: float = 10.0  # FLUX_SHUTDOWN_GRACE_S: a running generation may finish
    max_side: int = 2048
    max_images: int = 4
    hf_token: str | None = None
    require_gpu: bool = False  # FLUX_REQUIRE_GPU: fail (not fall back to CPU) without a GPU
    test_load_delay: float = 0.0  # FLUX_TEST_LOAD_DELAY: test hook, slows the loading phase
    test_generate_delay: float = 0.0  # FLUX_TEST_GENERATE_DELAY: test hook, slows generations
    speed: SpeedRequest = field(default_factory=SpeedRequest)  # FLUX_COMPILE, FLUX_FP8, ... (flux_server/speed.py)
    api_keys_file: str | None = None  # FLUX_API_KEYS_FILE: set, every API route needs a key
    metrics_public: bool = False  # FLUX_METRICS_PUBLIC: /metrics without a key
    lora_dir: str = "/loras"  # FLUX_LORA_DIR: the only folder /apply-lora reads paths from
    lora_allow: tuple[str, ...] = ()  # FLUX_LORA_ALLOW: hub ids or owners (owner/*); () any
    lora_max_bytes: int = 2 * 1024**3  # FLUX_LORA_MAX_BYTES: largest LoRA file downloaded
    lora_timeout: float = 600.0  # FLUX_LORA_TIMEOUT: seconds for a LoRA's hub download
    max_body_bytes: int = 1024 * 1024  # FLUX_MAX_BODY_BYTES: larger request bodies get 413

    @property
    def tiny(self) -> bool:
        return self.model == "tiny"

    def public(self) -> dict:
        """The settings safe to show (the token only as set / not set)."""
        data = {k: v for k, v in self.__dict__.items() if k not in ("hf_token", "speed")}
        data["hf_token_set"] = self.hf_token is not None
        data["speed"] = speed_public(self.speed)
        return data


def hf_token_from(env: Mapping[str, str]) -> str | None:
    """The Hugging Face token from HF_TOKEN or its aliases, or None."""
    for name in TOKEN_VARS:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def api_keys_file_from(env: Mapping[str, str]) -> str | None:
    """FLUX_API_KEYS_FILE, or None (no auth) when unset or blank."""
    return env.get("FLUX_API_KEYS_FILE", "").strip() or None


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in choices:
        raise SettingsError(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    raise SettingsError(f"{name}={value!r} is not a flag: use 1 (or true) or 0 (or false)")


def number_from(env: Mapping[str, str], name: str, kind: type[Number], default: Number,
                minimum: Number) -> Number:
    """The int or float in `env[name]` (`default` when unset or blank), at least `minimum`;
    SettingsError naming the variable, the value and what it must be otherwise."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if kind is int and (value is None or value < minimum):
        raise SettingsError(f"{name}={raw!r} must be a whole number >= {minimum}")
    if value is None:
        raise SettingsError(f"{name}={raw!r} is not a number")
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be >= {minimum:g}")
    return value


def speed_public(request: SpeedRequest) -> dict:
    """The speed options as asked for (before `auto` is resolved), JSON-ready."""
    data = dict(request.__dict__)
    if request.warm_sizes is not None:
        data["warm_sizes"] = [f"{w}x{h}" for w, h in request.warm_sizes]
    return data


def speed_from_env(env: Mapping[str, str], max_side: int) -> SpeedRequest:
    """FLUX_COMPILE, FLUX_FP8, FLUX_FUSE_QKV, FLUX_STEP_CACHE, FLUX_CACHE_THRESHOLD and
    FLUX_WARM_SIZES; SettingsError naming the variable on a bad value."""
    threshold = env.get("FLUX_CACHE_THRESHOLD", "").strip()
    warm = env.get("FLUX_WARM_SIZES")
    try:
        sizes = parse_sizes(warm, max_side) if warm is not None and warm.strip() else None
    except ValueError as exc:
        raise SettingsError(f"FLUX_WARM_SIZES={warm!r}: {exc}") from None
    value = None
    if threshold:
        value = number_from(env, "FLUX_CACHE_THRESHOLD", float, 0.0, 0.0)
        if value > 1.0:
            raise SettingsError(f"FLUX_CACHE_THRESHOLD={threshold!r} must be between 0 and 1")
    return SpeedRequest(
        compile=_choice(env, "FLUX_COMPILE", COMPILE_CHOICES, "auto"),
        fp8=_choice(env, "FLUX_FP8", SWITCH_CHOICES, "auto"),
        fuse_qkv=_choice(env, "FLUX_FUSE_QKV", SWITCH_CHOICES, "auto"),
        cache=_choice(env, "FLUX_STEP_CACHE", CACHE_CHOICES, "auto"),
        cache_threshold=value,
        warm_sizes=sizes,
    )


def timeouts_from_env(env: Mapping[str, str]) -> dict[str, float]:
    """FLUX_QUEUE_TIMEOUT and FLUX_RUN_TIMEOUT; FLUX_REQUEST_TIMEOUT (the old single deadline)
    is the default of both when set, and otherwise their sum."""
    legacy = env.get("FLUX_REQUEST_TIMEOUT", "").strip()
    old = number_from(env, "FLUX_REQUEST_TIMEOUT", float, 300.0, 0.1) if legacy else None
    queue = number_from(env, "FLUX_QUEUE_TIMEOUT", float, old or 120.0, 0.1)
    run = number_from(env, "FLUX_RUN_TIMEOUT", float, old or 300.0, 0.1)
    return {"queue_timeout": queue, "run_timeout": run,
            "request_timeout": old if old is not None else queue + run}


def settings_from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Parse the environment; raise SettingsError naming the variable on a bad value."""
    env = os.environ if env is None else env
    dtype = env.get("FLUX_DTYPE", "").strip().lower() or None
    if dtype is not None and dtype not in DTYPE_CHOICES:
        raise SettingsError(f"FLUX_DTYPE={dtype!r} is not one of {', '.join(DTYPE_CHOICES)}")
    max_side = number_from(env, "FLUX_MAX_SIDE", int, 2048, 64)
    if max_side % 16:
        raise SettingsError(f"FLUX_MAX_SIDE={max_side} must be a multiple of 16")
    return Settings(
        port=number_from(env, "PORT", int, 8000, 0),
        host=env.get("FLUX_HOST", "").strip() or "0.0.0.0",
        model=env.get("FLUX_MODEL", "").strip() or DEFAULT_MODEL,
        memory=_choice(env, "FLUX_MEMORY", MEMORY_CHOICES, "auto"),
        quant=_choice(env, "FLUX_QUANT", QUANT_CHOICES, "none"),
        dtype=dtype,
        device_map=env.get("FLUX_DEVICE_MAP", "").strip() or None,
        queue_size=number_from(env, "FLUX_QUEUE_SIZE", int, 16, 1),
        **timeouts_from_env(env),
        max_work=number_from(env, "FLUX_MAX_WORK", float, 0.0, 0.001) or None,
        shutdown_grace_s=number_from(env, "FLUX_SHUTDOWN_GRACE_S", float, 10.0, 0.0),
        max_side=max_side,
        max_images=number_from(env, "FLUX_MAX_IMAGES", int, 4, 1),
        hf_token=hf_token_from(env),
        require_gpu=_flag(env, "FLUX_REQUIRE_GPU"),
        test_load_delay=number_from(env, "FLUX_TEST_LOAD_DELAY", float, 0.0, 0.0),
        test_generate_delay=number_from(env, "FLUX_TEST_GENERATE_DELAY", float, 0.0, 0.0),
        speed=speed_from_env(env, max_side),
        api_keys_file=api_keys_file_from(env),
        metrics_public=_flag(env, "FLUX_METRICS_PUBLIC"),
        lora_dir=env.get("FLUX_LORA_DIR", "").strip() or "/loras",
        lora_allow=tuple(p.strip() for p in env.get("FLUX_LORA_ALLOW", "").split(",")
                         if p.strip()),
        lora_max_bytes=number_from(env, "FLUX_LORA_MAX_BYTES", int, 2 * 1024**3, 1),
        lora_timeout=number_from(env, "FLUX_LORA_TIMEOUT", float, 600.0, 0.1),
        max_body_bytes=number_from(env, "FLUX_MAX_BODY_BYTES", int, 1024 * 1024, 1024),
    )
