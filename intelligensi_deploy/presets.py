"""Presets: what to deploy where, as validated YAML.

A preset is looked up by name (shipped in ``presets/``, or a user preset in
``$FLUXDEPLOY_CONFIG/presets``, default ``~/.config/fluxdeploy/presets``) or given as a path.
Every problem becomes a :class:`PresetError` naming the file, the field, the bad value and what
is allowed. This module imports neither httpx nor paramiko (``presets list`` must stay fast).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from intelligensi_deploy import names
from intelligensi_deploy.bundle.settings import BUNDLED, BuildSettings
from intelligensi_deploy.preset_device_map import check_device_map, check_env_device_map
from intelligensi_deploy.preset_kubernetes import KubernetesSection
from intelligensi_deploy.preset_limits import LimitsSection, check_limits
from intelligensi_deploy.preset_paths import PresetError, resolve_preset_path
from intelligensi_deploy.preset_scale import ScaleSection
from intelligensi_deploy.preset_speed import SpeedSettings

GATED_MODELS = frozenset({"black-forest-labs/FLUX.1-dev"})
SECRET_ENV_NAMES = frozenset(
    {"HF_TOKEN", "HUGGINGFACEHUB_API_TOKEN", "HUGGINGFACE_TOKEN", "GHCR_TOKEN", "LAMBDA_API_KEY"}
)

# GPU memory per GPU (GB) and compute capability, by Lambda instance type family.
# Used only to refuse presets that cannot fit; unknown types are not judged.
GPU_FACTS: dict[str, tuple[int, float]] = {
    "a10": (24, 8.6),
    "a6000": (48, 8.6),
    "a100": (40, 8.0),
    "a100_80gb": (80, 8.0),
    "h100": (80, 9.0),
    "gh200": (96, 9.0),
    "b200": (180, 10.0),
}
# Peak memory (GB) of FLUX.1 per (quant, offload) from the diffusers benchmarks (NOTES.md).
FLUX_PEAK_GB: dict[tuple[str, bool], float] = {
    ("none", False): 36.2,
    ("none", True): 23.3,
    ("nf4", False): 17.3,
    ("nf4", True): 12.4,
    ("int8", False): 21.5,
    ("int8", True): 12.2,
    ("fp8", False): 21.5,
    ("fp8", True): 12.2,
}


FILE_SYSTEM_NAME = re.compile(r"(?=.{1,60}$)[a-zA-Z]+[0-9a-zA-Z-]*")  # POST /filesystems: name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class LambdaSettings(_Strict):
    """Where and what to rent on Lambda Cloud."""

    instance_type: str = Field(pattern=r"^gpu_\d+x_[a-z0-9_]+$")
    regions: list[str] = Field(default_factory=list, description="preference order; empty: any")
    ssh_key_name: str = Field(min_length=1, description="name of an SSH key in your Lambda account")
    file_system: str | None = Field(
        None, description="Lambda file system for the HF cache: `auto` (one per deployment, "
        "fluxdeploy-<name>), `none`, or a file system's name; it pins the launch region")

    @field_validator("file_system")
    @classmethod
    def _file_system(cls, value: str | None) -> str | None:
        if value is None or value in ("auto", "none") or FILE_SYSTEM_NAME.fullmatch(value):
            return value
        raise ValueError("must be `auto`, `none`, or a Lambda file system name: a letter "
                         "first, then letters, digits and dashes, 60 characters at most "
                         "(Lambda's rule)")

    def file_system_for(self, deployment: str) -> str | None:
        """The file system a deployment named `deployment` mounts (None: none)."""
        if self.file_system in (None, "none"):
            return None
        return names.file_system_name(deployment) if self.file_system == "auto" \
            else self.file_system

    def gpu_count(self) -> int:
        return int(self.instance_type.split("_")[1].rstrip("x"))

    def gpu_facts(self) -> tuple[int, float] | None:
        """(GB per GPU, compute capability) when the type is known."""
        family = self.instance_type.split("_", 2)[2]
        for key in sorted(GPU_FACTS, key=len, reverse=True):
            if family.startswith(key):
                return GPU_FACTS[key]
        return None


class SSHSettings(_Strict):
    """How to reach the machine (for `lambda`: the user, key and port of the VM it gets)."""

    host: str | None = None
    user: str = "ubuntu"
    port: int = Field(22, ge=1, le=65535)
    key_path: str = "~/.ssh/id_ed25519"


class ServerSettings(_Strict):
    """The FLUX server's settings, passed to the container (see docs/contract.md)."""

    model: str = "black-forest-labs/FLUX.1-schnell"
    memory: Literal["auto", "gpu", "balanced", "model-offload", "sequential-offload", "cpu"] = "auto"
    quant: Literal["none", "nf4", "int8", "fp8"] = "none"
    dtype: Literal["bf16", "fp16", "fp32"] = "bf16"
    device_map: str | None = None
    queue_size: int = Field(16, ge=1, le=1024)
    speed: SpeedSettings = SpeedSettings()  # preset_speed.py

    _device_map = field_validator("device_map")(check_device_map)  # preset_device_map.py

    def container_env(self) -> dict[str, str]:
        env = {
            "FLUX_MODEL": self.model,
            "FLUX_MEMORY": self.memory,
            "FLUX_QUANT": self.quant,
            "FLUX_DTYPE": self.dtype,
            "FLUX_QUEUE_SIZE": str(self.queue_size),
        }
        if self.device_map:
            env["FLUX_DEVICE_MAP"] = self.device_map
        env.update(self.speed.container_env())
        return env


class Preset(_Strict):
    """One deployable configuration: provider, machine, image, model, exposure."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")
    description: str = ""
    provider: Literal["lambda", "ssh", "local"]
    lambda_: LambdaSettings | None = Field(None, alias="lambda")
    ssh: SSHSettings = SSHSettings()
    image: str = Field(BUNDLED, min_length=1, description="`bundled` (built on the host from "
                       "the server shipped with the CLI) or a registry image to pull")
    build: BuildSettings = BuildSettings()
    registry_username: str | None = None
    pull: Literal["always", "if-missing"] = "always"
    server: ServerSettings = ServerSettings()
    port: int = Field(8000, ge=1, le=65535)
    exposure: Literal["tunnel", "public"] = "tunnel"
    public_cidr: str = "0.0.0.0/0"
    auth: bool | None = Field(None, description="API keys on the server (api_keys.py); default "
                              "on with exposure: public, off with tunnel")
    hf_cache: str | None = Field(None, description="host path for the HF cache; default a volume")
    gpus: bool = True
    env: dict[str, str] = Field(default_factory=dict)
    ready_timeout: int = Field(1800, ge=10, le=6 * 3600, description="seconds")
    scale: ScaleSection | None = Field(None, description="replicas on Ray Serve (preset_scale.py)")
    limits: LimitsSection = Field(LimitsSection(), description="idle and lifetime limits that "
                                  "terminate a Lambda instance (preset_limits.py)")
    kubernetes: KubernetesSection | None = Field(None, description="for `fluxdeploy k8s "
                                                 "render` only (preset_kubernetes.py)")

    @field_validator("public_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError("must be a CIDR such as 0.0.0.0/0 or 203.0.113.7/32") from None
        return value

    @field_validator("env")
    @classmethod
    def _no_secrets_in_env(cls, value: dict[str, str]) -> dict[str, str]:
        check_env_device_map(value)  # preset_device_map.py
        leaked = sorted(SECRET_ENV_NAMES & set(value))
        if leaked:
            raise ValueError(
                f"{', '.join(leaked)} must not be written in a preset: export it in your shell "
                "instead (fluxdeploy passes it to the VM in a 0600 file, never in files you share)"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Preset:
        if self.provider == "lambda" and self.lambda_ is None:
            raise ValueError("provider 'lambda' needs a 'lambda:' section with instance_type")
        if self.provider != "lambda" and self.lambda_ is not None:
            raise ValueError(f"provider '{self.provider}' takes no 'lambda:' section")
        if self.provider == "local" and self.exposure == "public":
            raise ValueError("provider 'local' publishes on 127.0.0.1 only: use exposure: tunnel")
        if self.exposure == "public" and self.auth is False:
            raise ValueError(
                "exposure: public with auth: false would let anyone who finds the address "
                "drive your GPU and read the prompts: remove `auth: false` (fluxdeploy creates "
                "the key and sends it for you) or use exposure: tunnel")
        if self.lambda_ is not None:
            facts = self.lambda_.gpu_facts()
            self.server.speed.check_gpu(self.lambda_.instance_type, facts[1] if facts else None)
            _check_fits_gpu(self.lambda_, self.server)
        check_scale(self)
        if self.scale is not None and self.scale.nodes > 1 and self.lambda_ is not None \
                and self.lambda_.file_system not in (None, "none"):
            raise ValueError("lambda.file_system on a multi-VM cluster (scale.nodes > 1) is "
                             "not supported yet: each node keeps its own HF cache; set "
                             "`file_system: none`")
        check_limits(self.limits, self.provider, self.ready_timeout)
        return self

    def scale_env(self) -> dict[str, str]:
        """The server's FLUX_* scale variables (none without a `scale:` section)."""
        if self.scale is None:
            return {}
        gpus = self.lambda_.gpu_count() if self.lambda_ else (self.scale.replicas_per_node or 1)
        return self.scale.container_env(gpus, self.server.queue_size)

    @property
    def auth_on(self) -> bool:
        """Whether the server checks API keys: `auth:` when given, else public exposure."""
        return self.exposure == "public" if self.auth is None else self.auth

    @property
    def tls_on(self) -> bool:
        """Whether the server speaks HTTPS (a public endpoint: tls_cert.py, tls_pin.py)."""
        return self.exposure == "public"

    @property
    def bundled(self) -> bool:
        """The image is built on the host from the server shipped with the CLI."""
        return self.image == BUNDLED

    @property
    def image_path(self) -> str:
        """How the image gets to the host, for `presets show` and `status`."""
        return "build on the host (bundled)" if self.bundled else f"pull {self.image}"

    @property
    def gated(self) -> bool:
        return self.server.model in GATED_MODELS


def _check_fits_gpu(machine: LambdaSettings, server: ServerSettings) -> None:
    """Refuse a memory plan that cannot fit the instance type's GPU (NOTES.md figures)."""
    facts = machine.gpu_facts()
    if facts is None or server.memory in ("auto", "cpu", "sequential-offload"):
        return
    gb, capability = facts
    if server.quant == "fp8" and capability < 8.9:
        raise ValueError(
            f"quant fp8 needs compute capability >= 8.9; {machine.instance_type} has {capability}: "
            "use nf4 or int8"
        )
    if server.memory == "balanced":
        return
    offload = server.memory == "model-offload"
    peak = FLUX_PEAK_GB.get((server.quant, offload))
    if peak is not None and server.dtype != "fp32" and peak > gb:
        raise ValueError(
            f"FLUX.1 with quant={server.quant}, memory={server.memory} peaks near {peak} GB but "
            f"{machine.instance_type} has {gb} GB per GPU: use quant nf4 (or int8) with memory "
            "model-offload, or memory auto"
        )


def check_scale(preset: Preset) -> None:
    """Refuse a scale section that cannot run as written; ValueError names the fix."""
    scale = preset.scale
    if scale is None:
        return
    machine = preset.lambda_
    if scale.nodes > 1 and machine is None:
        raise ValueError(f"scale.nodes: {scale.nodes} needs provider 'lambda' (it launches "
                         "the nodes); for one machine use nodes: 1")
    if preset.bundled and "scale" not in preset.build.extras:
        raise ValueError("a scale: section runs the server on Ray Serve, which the bundled "
                         f"image has only with the 'scale' extra: set build.extras to "
                         f"{[*preset.build.extras, 'scale']}")
    gpus = machine.gpu_count() if machine is not None else None
    if gpus is None:
        if preset.gpus and scale.replicas_per_node is None:
            raise ValueError("scale.replicas_per_node is required off Lambda (fluxdeploy "
                             "cannot tell how many GPUs the machine has): set it to the GPU "
                             "count")
        gpus = scale.replicas_per_node or 1
    per_node = scale.per_node(gpus)
    if preset.gpus and per_node > gpus:
        raise ValueError(f"scale.replicas_per_node: {per_node} is more than the {gpus} GPU(s) "
                         f"of {machine.instance_type if machine else 'the machine'}; each "
                         f"replica takes one GPU: use at most {gpus}")
    capacity = scale.nodes * per_node
    low, high, ready = scale.bounds(gpus)
    if high > capacity:
        raise ValueError(f"scale.max_replicas: {high} can never be placed: {scale.nodes} "
                         f"node(s) x {per_node} replica(s) = {capacity} GPUs; raise nodes or "
                         f"lower max_replicas to {capacity}")
    if low > high:
        raise ValueError(f"scale.min_replicas: {low} is above max_replicas {high}")
    if ready > high:
        raise ValueError(f"scale.min_ready: {ready} can never be reached with max_replicas "
                         f"{high}: lower it")
    if capacity > 1 and preset.server.memory == "balanced":
        raise ValueError("server.memory 'balanced' splits one pipeline over every GPU, but "
                         "scale gives each replica one GPU: use memory gpu (or auto)")
    if preset.server.device_map and capacity > 1:
        raise ValueError("server.device_map spreads one pipeline over GPUs; with scale each "
                         "replica has one GPU: remove device_map")


def load_preset(ref: str) -> Preset:
    """Load and validate a preset by name or path; errors name file, field, value and fix."""
    path = resolve_preset_path(ref)
    return parse_preset(path.read_text(encoding="utf-8"), source=str(path))


def parse_preset(text: str, source: str = "<preset>") -> Preset:
    """Validate preset YAML text; `source` names it in errors."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PresetError(
            f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}",
            fix="Fix the YAML syntax (indentation, a missing colon or quote).",
        ) from None
    if not isinstance(data, dict):
        raise PresetError(f"{source}: a preset is a mapping of fields, got {type(data).__name__}.")
    data.setdefault("name", Path(source).stem)
    try:
        return Preset.model_validate(data)
    except ValidationError as exc:
        raise PresetError(
            f"{source}: invalid preset:\n" + "\n".join(_describe(e) for e in exc.errors()),
            fix="Correct the field(s) above; `fluxdeploy presets show local` shows a valid preset.",
            doc="presets",
        ) from None


def _describe(error: Any) -> str:
    """One pydantic error as `field: problem (got value); allowed ...`."""
    loc = ".".join(str(p) for p in error["loc"]) or "(top level)"
    value = error.get("input")
    if error["type"] == "extra_forbidden":
        allowed = _fields_at(error["loc"][:-1])
        close = difflib.get_close_matches(str(error["loc"][-1]), allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"  - {loc}: unknown field{hint} Allowed here: {', '.join(allowed)}"
    if error["type"] == "missing":
        return f"  - {loc}: required field is missing"
    message = error["msg"].removeprefix("Value error, ")
    shown = value if not isinstance(value, dict) else "{...}"
    return f"  - {loc}: {message} (got {shown!r})"


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = Preset
    for part in loc:
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        inner = getattr(field, "annotation", None) if field else None
        candidates = [a for a in getattr(inner, "__args__", (inner,)) if isinstance(a, type)]
        nested = next((a for a in candidates if issubclass(a, BaseModel)), None)
        if nested is None:
            return []
        model = nested
    return sorted(f.alias or n for n, f in model.model_fields.items())
