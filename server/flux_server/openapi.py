"""/openapi.json as the server really answers: every status, body, content type and header.

FastAPI derives request bodies from the pydantic models; this module replaces every
operation's responses with the ones the routes, the error handlers and the middleware
produce (FastAPI would document its own `HTTPValidationError` for 422, where the server
answers `{error, detail[]}`), and writes the limits that come from the environment
(FLUX_MAX_SIDE, FLUX_MAX_IMAGES) into the request schemas. Pure: schema dict in, dict out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from flux_server.engine import MIME_TYPES
from flux_server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from flux_server.schemas import MAX_SEED, MIN_SIDE, SIDE_MULTIPLE
from flux_server.state import STATES

REF = "#/components/schemas/{model}"


class ErrorInfo(BaseModel):
    type: str = Field(description="what went wrong, e.g. QueueFull, NotReady, Timeout")
    message: str
    hint: str = Field(description="what to do about it")


class ErrorBody(BaseModel):
    """Every answer other than 200 and 422 (503 NotReady adds the /ready body as `ready`)."""

    model_config = ConfigDict(extra="allow")
    error: ErrorInfo


class FieldProblem(BaseModel):
    field: str = Field(description="the request field, dotted for nested ones, or `body`")
    rule: str = Field(description="the rule it breaks")
    type: str


class ValidationErrorBody(BaseModel):
    """422: which fields break which rules (the server's own shape, not FastAPI's)."""

    error: ErrorInfo
    detail: list[FieldProblem]


class Health(BaseModel):
    status: Literal["ok"]


class LoadError(BaseModel):
    type: str
    message: str
    hint: str


class Activity(BaseModel):
    in_flight: int = Field(description="generation requests in progress")
    requests: int = Field(description="generation requests received since start")
    idle_s: float | None = Field(description="seconds with no generation request, counted "
                                 "from ready (null until ready); read by the idle limit")


class Limits(BaseModel):
    max_work: float = Field(description="FLUX_MAX_WORK: the most megapixel-steps (width x "
                            "height x steps x images / 1e6, twice with true CFG) one request "
                            "may ask for; more is a 422")
    max_side: int
    max_images: int
    queue_timeout_s: float = Field(description="FLUX_QUEUE_TIMEOUT: longest wait to start "
                                   "(then 503 QueueTimeout with Retry-After)")
    run_timeout_s: float = Field(description="FLUX_RUN_TIMEOUT: longest run (then 504)")


class ReadyBody(BaseModel):
    state: Literal[STATES]  # type: ignore[valid-type]
    ready: bool
    model: str
    tiny: bool
    elapsed_s: float
    phase_elapsed_s: dict[str, float]
    progress: dict[str, int]
    error: LoadError | None
    activity: Activity
    limits: Limits


class GeneratedImage(BaseModel):
    b64: str
    seed: int


class GenerateJSON(BaseModel):
    """POST /generate with response_format=b64_json."""

    images: list[GeneratedImage]
    seed: int
    width: int
    height: int
    num_inference_steps: int
    guidance_scale: float
    output_format: Literal["png", "jpeg", "webp"]
    generation_s: float
    queue_wait_s: float
    model: str
    tiny: bool


class OpenAIImage(BaseModel):
    b64_json: str


class OpenAIImagesResponse(BaseModel):
    created: int
    data: list[OpenAIImage]
    output_format: Literal["png", "jpeg", "webp"]
    size: str


class LoraAdapter(BaseModel):
    name: str
    source: str
    weight: float


class LoraStatus(BaseModel):
    active: bool
    adapters: list[LoraAdapter]


class ModelStatus(BaseModel):
    """Model, strategy, devices, queue, timings and LoRA (see docs/contract.md)."""

    model_config = ConfigDict(extra="allow")
    model: str
    tiny: bool
    state: Literal[STATES]  # type: ignore[valid-type]
    ready: bool
    queue: dict[str, Any]


MODELS = (ErrorBody, ValidationErrorBody, Health, ReadyBody, GenerateJSON, OpenAIImagesResponse,
          LoraStatus, ModelStatus)


def _header(description: str, schema: dict) -> dict:
    return {"description": description, "required": True, "schema": schema}


RETRY_AFTER = {"Retry-After": _header("seconds to wait before retrying",
                                      {"type": "string", "pattern": r"^\d+$"})}
RETRY_AFTER_UNLESS_TERMINAL = {"Retry-After": {
    **RETRY_AFTER["Retry-After"], "required": False,
    "description": "seconds to wait before retrying; absent when the model failed to load "
                   "(terminal: it will not clear by itself)"}}
SHOULD_RETRY = {"x-should-retry": {
    "description": "whether a retry can succeed (the official OpenAI SDKs obey it): true on "
                   "429 and on a 503 with Retry-After, false otherwise",
    "required": False, "schema": {"type": "string", "enum": ["true", "false"]}}}
REQUEST_ID = {"X-Request-Id": _header("the id in the request's log line (yours if you sent a "
                                      "valid X-Request-Id)", {"type": "string"})}
SEED = {"X-Seed": _header("the seed of the first image", {"type": "string",
                                                          "pattern": r"^\d+$"})}
SECONDS = {"type": "string", "pattern": r"^\d+\.\d+$"}
TIMINGS = {"X-Generation-Seconds": _header("time spent generating", SECONDS)}
QUEUE_WAIT = {"X-Queue-Wait-Seconds": _header("time spent waiting in the queue", SECONDS)}


def _json(model: type[BaseModel], description: str, headers: dict | None = None) -> dict:
    response: dict[str, Any] = {"description": description, "content": {
        "application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}}
    if headers:
        response["headers"] = headers
    return response


VALIDATION = _json(ValidationErrorBody, "a field breaks a rule: the field and the rule")
NOT_READY = _json(ErrorBody, "the model is not ready yet (NotReady; terminal, without "
                  "Retry-After, when loading failed), the generation did not start within "
                  "FLUX_QUEUE_TIMEOUT (QueueTimeout), or the server is shutting down "
                  "(ShuttingDown)", RETRY_AFTER_UNLESS_TERMINAL)
FAILED = _json(ErrorBody, "the operation failed (e.g. GenerationOutOfMemory); the server goes on")
GENERATION_ERRORS = {
    "422": VALIDATION,
    "429": _json(ErrorBody, "the queue is full (QueueFull)", RETRY_AFTER),
    "499": _json(ErrorBody, "the client went away; its generation was stopped (log only)"),
    "500": FAILED,
    "503": NOT_READY,
    "504": _json(ErrorBody, "ran longer than FLUX_RUN_TIMEOUT; the generation was stopped at "
                 "its next step (x-should-retry: false)"),
}
IMAGE = {"schema": {"type": "string", "format": "binary"}}
SECURITY_SCHEME = "bearerAuth"
UNAUTHORIZED = _json(ErrorBody, "no API key, or one that is not accepted (Unauthorized); only "
                     "while the server has FLUX_API_KEYS_FILE", {"WWW-Authenticate": _header(
                         "the scheme to use: Bearer", {"type": "string", "pattern": "^Bearer"})})

RESPONSES: dict[tuple[str, str], dict[str, dict]] = {
    ("/health", "get"): {"200": _json(Health, "the process serves")},
    ("/health", "head"): {"200": {"description": "the process serves (no body)"}},
    ("/ready", "get"): {
        "200": _json(ReadyBody, "loaded and warmed up"),
        "503": _json(ReadyBody, "not ready: still loading, or failed (see error; terminal: "
                     "no Retry-After)", RETRY_AFTER_UNLESS_TERMINAL),
    },
    ("/generate", "post"): {
        "200": {"description": "the image (response_format=bytes) or base64 JSON",
                "headers": {**SEED, **TIMINGS, **QUEUE_WAIT},
                "content": {**{mime: IMAGE for mime in MIME_TYPES.values()},
                            "application/json": {"schema": {"$ref": REF.format(
                                model="GenerateJSON")}}}},
        **GENERATION_ERRORS,
    },
    ("/v1/images/generations", "post"): {
        "200": _json(OpenAIImagesResponse, "images as base64 JSON", {**SEED, **TIMINGS}),
        **GENERATION_ERRORS,
    },
    ("/model-status", "get"): {"200": _json(ModelStatus, "the server's full state")},
    ("/apply-lora", "post"): {
        "200": _json(LoraStatus, "applied; the adapters now active"),
        "400": _json(ErrorBody, "the LoRA could not be loaded (not on the hub, gated, larger "
                     "than FLUX_LORA_MAX_BYTES, not a FLUX LoRA, ...): the genuine error and a "
                     "hint"),
        "422": _json(ValidationErrorBody, "a field breaks a rule, or the source is refused: "
                     "not a hub id or a path under FLUX_LORA_DIR, not in FLUX_LORA_ALLOW, or "
                     "pickle weights"),
        "500": FAILED, "503": NOT_READY,
        "504": _json(ErrorBody, "the download took longer than FLUX_LORA_TIMEOUT "
                     "(LoraTimeout); generations went on meanwhile"),
    },
    ("/remove-lora", "post"): {
        "200": _json(LoraStatus, "removed; the adapters still active"),
        "422": VALIDATION, "500": FAILED, "503": NOT_READY,
    },
    ("/lora-status", "get"): {"200": _json(LoraStatus, "the active adapters")},
    ("/loras", "get"): {"200": _json(LoraStatus, "the active adapters")},
    ("/metrics", "get"): {"200": {"description": "Prometheus text format 0.0.4",
                                  "content": {METRICS_CONTENT_TYPE: {"schema": {
                                      "type": "string"}}}}},
}


def _branch(prop: dict, kind: str) -> dict:
    """The `kind` branch of an optional field's anyOf (or the field itself)."""
    for option in prop.get("anyOf", [prop]):
        if option.get("type") == kind:
            return option
    raise KeyError(kind)


def _sides(max_side: int) -> list[int]:
    return list(range(MIN_SIDE, max_side + 1, SIDE_MULTIPLE))


def _apply_limits(schemas: dict, max_side: int, max_images: int) -> None:
    for name in ("GenerateRequest", "OpenAIImageRequest"):  # exact: not a rounded float
        _branch(schemas[name]["properties"]["seed"], "integer")["maximum"] = MAX_SEED
    generate = schemas["GenerateRequest"]
    for side in ("width", "height"):
        _branch(generate["properties"][side], "integer")["maximum"] = max_side
    generate["properties"]["num_images"]["maximum"] = max_images
    # raw image bytes carry one image: several need response_format b64_json
    generate["anyOf"] = [
        {"properties": {"num_images": {"const": 1}}},
        {"required": ["response_format"], "properties": {"response_format": {
            "const": "b64_json"}}},
    ]
    lora = schemas["LoraRequest"]  # one name of each pair, never null (schemas.LoraRequest)
    for name, kind in (("source", "string"), ("lora_name", "string"), ("weight", "number"),
                       ("lora_weight", "number")):
        prop = lora["properties"][name]
        lora["properties"][name] = {**_branch(prop, kind), **{
            k: v for k, v in prop.items() if k in ("title", "description")}}
    lora["oneOf"] = [{"required": ["source"]}, {"required": ["lora_name"]}]
    lora["not"] = {"required": ["weight", "lora_weight"]}
    # a negative prompt needs true_cfg_scale above 1 (else 422: never ignored silently)
    generate["allOf"] = [{"anyOf": [
        {"not": {"required": ["negative_prompt"]}},
        {"properties": {"negative_prompt": {"anyOf": [{"type": "null"},
                                                      {"type": "string", "maxLength": 0}]}}},
        {"required": ["true_cfg_scale"], "properties": {"true_cfg_scale": {
            "exclusiveMinimum": 1}}},
    ]}]
    openai = schemas["OpenAIImageRequest"]
    openai["properties"]["n"]["maximum"] = max_images
    sides = "|".join(str(s) for s in _sides(max_side))
    _branch(openai["properties"]["size"], "string")["pattern"] = f"^({sides})x({sides})$"
    openai["properties"]["response_format"]["enum"] = ["b64_json"]  # no image URLs


def _secure(schema: dict, protected: Callable[[str], bool]) -> None:
    """Declare the bearer scheme, and on each operation that needs the key its 401."""
    schema["components"]["securitySchemes"] = {SECURITY_SCHEME: {
        "type": "http", "scheme": "bearer",
        "description": "a key of the server's FLUX_API_KEYS_FILE (docs/contract.md)"}}
    for path, operations in schema.get("paths", {}).items():
        if not protected(path):
            continue
        for operation in operations.values():
            operation["security"] = [{SECURITY_SCHEME: []}]
            operation["responses"]["401"] = {
                **UNAUTHORIZED, "headers": {**UNAUTHORIZED["headers"], **REQUEST_ID}}


TOO_LARGE = _json(ErrorBody, "the body is larger than FLUX_MAX_BODY_BYTES (BodyTooLarge): "
                  "refused from its Content-Length or while it streamed, before parsing")
ROUTING = {
    "NotFound": _json(ErrorBody, "404: no such route (NotFound)"),
    "MethodNotAllowed": _json(ErrorBody, "405: the route does not take this method "
                              "(MethodNotAllowed); the Allow header lists those it takes"),
}


def _state_limits(schema: dict, limits: dict) -> None:
    """Write this server's work budget and deadlines into the generation operations."""
    said = (f"At most FLUX_MAX_WORK={limits['max_work']:g} megapixel-steps (width x height x "
            f"steps x images / 1e6, twice with true CFG; more is a 422). A generation waits at "
            f"most FLUX_QUEUE_TIMEOUT={limits['queue_timeout_s']:g}s to start (then 503 "
            f"QueueTimeout with Retry-After) and runs at most "
            f"FLUX_RUN_TIMEOUT={limits['run_timeout_s']:g}s (then 504).")
    for path in ("/generate", "/v1/images/generations"):
        operation = schema.get("paths", {}).get(path, {}).get("post")
        if operation is not None:
            operation["description"] = said
            operation["responses"]["422"] = {
                **operation["responses"]["422"], "description": "a field breaks a rule, or "
                f"the request asks for more than FLUX_MAX_WORK={limits['max_work']:g} "
                "megapixel-steps: the field (or body) and the rule"}


def describe(schema: dict, max_side: int, max_images: int,
             protected: Callable[[str], bool] | None = None, limits: dict | None = None
             ) -> dict:
    """FastAPI's generated schema, made to say exactly what the server returns; with
    `protected` (API keys on: which paths need the key) the bearer scheme and the 401s;
    with `limits` (/ready's) the work budget and the deadlines of this server."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    _, definitions = models_json_schema([(m, "serialization") for m in MODELS],
                                        ref_template=REF)
    components.update(definitions.get("$defs", {}))
    _apply_limits(components, max_side, max_images)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = RESPONSES.get((path, method))
            if responses is None:  # a route not listed here: at least its 422 is the server's
                if "422" in operation.get("responses", {}):
                    operation["responses"]["422"] = VALIDATION
                continue
            if "requestBody" in operation:
                responses = {**responses, "413": TOO_LARGE}
            operation["responses"] = {
                status: {**spec, "headers": {**spec.get("headers", {}), **REQUEST_ID,
                                             **(SHOULD_RETRY if status >= "400" else {})}}
                for status, spec in responses.items()}
    schema["components"]["responses"] = ROUTING  # any path: 404, 405 in the same shape
    if limits is not None:
        _state_limits(schema, limits)
    if protected is not None:
        _secure(schema, protected)
    return schema
