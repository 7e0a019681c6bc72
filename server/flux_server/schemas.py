"""Request bodies and their rules. Type and range rules live here; limits that come from
the environment (FLUX_MAX_SIDE, FLUX_MAX_IMAGES) are checked by `check_limits`."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

MIN_SIDE = 64
SIDE_MULTIPLE = 16
MAX_STEPS = 100
MAX_SEED = 2**63 - 1
MAX_PROMPT_CHARS = 10_000
SIZE_PATTERN = re.compile(r"^(\d{2,5})x(\d{2,5})$")


def _integral_number(value: Any) -> Any:
    """JSON has one number type: 2.0 is the integer 2 (as JSON Schema's `integer` says).
    2.5, "2" and true stay what they are, and are refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value



class InputError(ValueError):
    """A request field breaks a rule: answered with 422 naming the field and the rule."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class GenerateRequest(BaseModel):
    """POST /generate. Unset fields take the model's defaults (see /model-status)."""

    model_config = ConfigDict(extra="forbid")

    prompt: StrictStr = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    negative_prompt: StrictStr | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    num_inference_steps: StrictInt | None = Field(default=None, ge=1, le=MAX_STEPS)
    guidance_scale: StrictFloat | None = Field(default=None, ge=0, le=30)
    true_cfg_scale: StrictFloat = Field(default=1.0, ge=1, le=30,
                                                    description="> 1 enables negative_prompt")
    width: StrictInt | None = Field(default=None, ge=MIN_SIDE, multiple_of=SIDE_MULTIPLE)
    height: StrictInt | None = Field(default=None, ge=MIN_SIDE, multiple_of=SIDE_MULTIPLE)
    seed: StrictInt | None = Field(default=None, ge=0, le=MAX_SEED)
    num_images: StrictInt = Field(default=1, ge=1)
    output_format: Literal["png", "jpeg", "webp"] = "png"
    response_format: Literal["bytes", "b64_json"] = "bytes"

    _integral = field_validator("num_inference_steps", "width", "height", "seed", "num_images",
                                mode="before")(_integral_number)


class OpenAIImageRequest(BaseModel):
    """POST /v1/images/generations, as OpenAI's images API (extra fields are ignored)."""

    model_config = ConfigDict(extra="ignore")

    prompt: StrictStr = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    n: StrictInt = Field(default=1, ge=1)
    size: StrictStr | None = Field(default=None, description='"WIDTHxHEIGHT", e.g. "1024x1024"')
    response_format: Literal["b64_json", "url"] = "b64_json"
    output_format: Literal["png", "jpeg", "webp"] = "png"
    seed: StrictInt | None = Field(default=None, ge=0, le=MAX_SEED)
    num_inference_steps: StrictInt | None = Field(default=None, ge=1, le=MAX_STEPS)
    guidance_scale: StrictFloat | None = Field(default=None, ge=0, le=30)
    model: StrictStr | None = None

    _integral = field_validator("n", "seed", "num_inference_steps",
                                mode="before")(_integral_number)


class LoraRequest(BaseModel):
    """POST /apply-lora: a hub id or a path under FLUX_LORA_DIR, and its weight.
    `lora_name` and `lora_weight` are accepted for `source` and `weight` (the names of the
    dual FP4/BF16 API's clients); give one of each pair, not both."""

    model_config = ConfigDict(extra="forbid")

    source: StrictStr | None = Field(default=None, min_length=1, max_length=1000)
    weight: StrictFloat | None = Field(default=None, ge=-4, le=4, description="default 1.0")
    adapter_name: StrictStr | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    weight_name: StrictStr | None = Field(default=None, min_length=1, max_length=300)
    lora_name: StrictStr | None = Field(default=None, min_length=1, max_length=1000,
                                        description="another name for source")
    lora_weight: StrictFloat | None = Field(default=None, ge=-4, le=4,
                                            description="another name for weight")

    @model_validator(mode="after")
    def _one_name_each(self) -> LoraRequest:
        for field, alias in (("source", "lora_name"), ("weight", "lora_weight")):
            given, other = getattr(self, field), getattr(self, alias)
            for name, value in ((field, given), (alias, other)):
                if name in self.model_fields_set and value is None:
                    raise InputError(name, "must not be null: leave it out instead")
            if given is not None and other is not None:
                raise InputError(alias, f"is another name for {field}: give one of them")
            if given is None:
                object.__setattr__(self, field, other)
        if self.source is None:
            raise InputError("source", "Field required (or lora_name)")
        if self.weight is None:
            object.__setattr__(self, "weight", 1.0)
        return self

    def resolved(self) -> tuple[str, float]:
        """(source, weight), whichever names the client used."""
        return self.source or "", 1.0 if self.weight is None else self.weight


class RemoveLoraRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    adapter_name: StrictStr | None = None  # None: remove all


def parse_size(size: str) -> tuple[int, int]:
    """'1024x768' -> (1024, 768); InputError on another shape."""
    match = SIZE_PATTERN.match(size.strip())
    if not match:
        raise InputError("size", 'must look like "WIDTHxHEIGHT", e.g. "1024x1024"')
    return int(match.group(1)), int(match.group(2))


def check_side(field: str, value: int, max_side: int) -> None:
    if value < MIN_SIDE or value > max_side:
        raise InputError(field, f"must be between {MIN_SIDE} and {max_side} (FLUX_MAX_SIDE)")
    if value % SIDE_MULTIPLE:
        raise InputError(field, f"must be a multiple of {SIDE_MULTIPLE}")


def check_limits(width: int, height: int, num_images: int, max_side: int, max_images: int,
                 width_field: str = "width", height_field: str = "height",
                 images_field: str = "num_images") -> None:
    """Raise InputError for sizes or image counts beyond the configured limits."""
    check_side(width_field, width, max_side)
    check_side(height_field, height, max_side)
    if num_images > max_images:
        raise InputError(images_field, f"must be at most {max_images} (FLUX_MAX_IMAGES)")
