"""The HTTP API (docs/contract.md). torch and diffusers are imported by the loader thread,
never here, so the server answers /health while the model is still being imported."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from flux_server import __version__
from flux_server.activity import Activity
from flux_server.auth import ApiKeys, needs_key
from flux_server.auth_http import ApiKeyMiddleware, public_ready, refused_start
from flux_server.body_limit import BODY_KEY, BodyLimitMiddleware, json_problem
from flux_server.config import Settings
from flux_server.cost import budget_for
from flux_server.defaults import model_defaults
from flux_server.engine import MIME_TYPES
from flux_server.failures import explain
from flux_server.lora import LoraError
from flux_server.lora_source import LoraProblem
from flux_server.openapi import describe
from flux_server.page import add_page_routes
from flux_server.redact import redact
from flux_server.reqlog import RequestLogMiddleware
from flux_server.schemas import (
    GenerateRequest,
    InputError,
    LoraRequest,
    OpenAIImageRequest,
    RemoveLoraRequest,
    parse_size,
)
from flux_server.service import READY_RETRY_AFTER_S, FluxService, HTTPProblem

log = logging.getLogger("flux_server.app")
BODY_PARSE_ERROR = "There was an error parsing the body"  # FastAPI's 400 for non-UTF-8 bytes


def should_retry(status: int, headers: dict[str, str]) -> dict[str, str]:
    """`headers` plus `x-should-retry`, which the official OpenAI SDKs obey: true where
    waiting helps (429, 503 with Retry-After), false where a retry would fail again or
    repeat abandoned work (4xx, 501, 504, a terminal 503)."""
    if status == 429 or (status == 503 and "Retry-After" in headers):
        return {**headers, "x-should-retry": "true"}
    if 400 <= status < 500 or status in (501, 503, 504):
        return {**headers, "x-should-retry": "false"}
    return headers


def _problem_response(problem: HTTPProblem) -> JSONResponse:
    return JSONResponse(problem.body, status_code=problem.status,
                        headers=should_retry(problem.status, problem.headers))


def _field_of(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def _validation_response(errors: list[dict]) -> JSONResponse:
    detail = [{"field": _field_of(tuple(e.get("loc", ()))), "rule": e.get("msg", "invalid"),
               "type": e.get("type", "value_error")} for e in errors]
    message = "; ".join(f"{d['field']}: {d['rule']}" for d in detail)
    return JSONResponse(status_code=422, content={
        "error": {"type": "ValidationError", "message": message,
                  "hint": "fix the named fields (GET /docs lists the rules)"},
        "detail": detail}, headers=should_retry(422, {}))


def _body_errors(errors: list[dict], body: bytes | None) -> list[dict]:
    """pydantic's JSON errors name a character offset as the field: name the body instead,
    and say what is wrong with it (not UTF-8, not JSON, nested too deeply)."""
    if not any(e.get("type") == "json_invalid" for e in errors):
        return errors
    return [{"loc": ("body",), "type": "json_invalid", "msg": json_problem(body)}]


NAMES = {404: ("NotFound", "no such route: GET /docs lists them"),
         405: ("MethodNotAllowed", "use a method the Allow header lists")}


def api_keys_for(settings: Settings, keys: ApiKeys | None = None) -> ApiKeys | None:
    """The API keys of FLUX_API_KEYS_FILE, read once (None: no auth)."""
    if keys is None and settings.api_keys_file:
        keys = ApiKeys(settings.api_keys_file)
    if keys is not None and not keys.loaded:
        keys.reload()
    return keys


def create_app(settings: Settings, detect_gpus: Callable[[], list] | None = None,
               config_error: Exception | None = None, service: Any = None,
               api_keys: ApiKeys | None = None) -> FastAPI:
    """The FastAPI app; the model starts loading when the app starts (lifespan).

    `service` replaces the in-process FluxService (flux_server.cluster.ClusterService: the
    same routes over Ray Serve replicas). `api_keys` (else FLUX_API_KEYS_FILE's) protect
    every route but the open ones (auth.needs_key); a keys file that cannot be read at start
    keeps the model from loading and /ready says `failed`, `ApiKeysUnreadable`."""
    service = service or FluxService(settings, detect_gpus, config_error)
    keys = api_keys_for(settings, api_keys)
    activity = Activity()  # the idle clock a deployment's idle limit reads (watchdog.py)

    def secrets() -> list[str | None]:
        return [settings.hf_token, *(keys.secrets() if keys else [])]

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if keys is not None and keys.startup_error is not None:
            log.error("not loading the model: the API keys cannot be read (%s)",
                      keys.startup_error)
        else:
            service.start()
        yield
        await asyncio.to_thread(service.close)

    app = FastAPI(title="flux_server", version=__version__, lifespan=lifespan,
                  description="FLUX image generation (fluxdeploy). See docs/contract.md.")
    app.state.service = service

    protected = partial(needs_key, metrics_public=settings.metrics_public) if keys else None

    def limits() -> dict:
        """What one request may ask for, and how long it may wait and run."""
        loader = getattr(service, "loader", None)
        defaults = loader.defaults if loader is not None else model_defaults(
            settings.model, settings.tiny)
        return {"max_work": budget_for(settings.max_work, defaults.kind),
                "max_side": settings.max_side, "max_images": settings.max_images,
                "queue_timeout_s": settings.queue_timeout, "run_timeout_s": settings.run_timeout}

    def openapi_schema() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = describe(get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes), settings.max_side, settings.max_images, protected,
                limits())
        return app.openapi_schema

    app.openapi = openapi_schema  # type: ignore[method-assign]
    if keys is not None:  # added first: inside the request log, which logs its 401s too
        app.add_middleware(ApiKeyMiddleware, keys=keys, metrics=service.metrics,
                           metrics_public=settings.metrics_public)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)  # 413s
    app.add_middleware(RequestLogMiddleware, metrics=service.metrics)

    @app.exception_handler(HTTPProblem)
    async def _on_problem(_request: Request, problem: HTTPProblem):
        return _problem_response(problem)

    @app.exception_handler(RequestValidationError)
    async def _on_validation(request: Request, exc: RequestValidationError):
        return _validation_response(_body_errors(list(exc.errors()),
                                                 request.scope.get(BODY_KEY)))

    @app.exception_handler(HTTPException)
    async def _on_http(request: Request, exc: HTTPException):
        if exc.status_code == 400 and exc.detail == BODY_PARSE_ERROR:  # as for any bad JSON
            return _validation_response([{"loc": ("body",), "type": "json_invalid",
                                          "msg": json_problem(request.scope.get(BODY_KEY))}])
        if exc.status_code in NAMES:  # the one error shape, for routing errors too
            type_, hint = NAMES[exc.status_code]
            message = f"{request.method} {request.url.path}: {exc.detail}"
            return JSONResponse({"error": {"type": type_, "message": message, "hint": hint}},
                                status_code=exc.status_code,
                                headers=should_retry(exc.status_code, dict(exc.headers or {})))
        return await http_exception_handler(request, exc)

    @app.exception_handler(InputError)
    async def _on_input(_request: Request, exc: InputError):
        return _validation_response([{"loc": (exc.field,), "msg": exc.rule,
                                      "type": "value_error"}])

    @app.exception_handler(Exception)
    async def _on_error(_request: Request, exc: Exception):
        log.exception("unhandled error")
        return JSONResponse(status_code=500, content={"error": {
            "type": type(exc).__name__,
            "message": redact(str(exc), secrets())[:1000],
            "hint": "see the server log"}})

    @app.get("/health", summary="Liveness: 200 as soon as the process serves")
    async def health() -> dict:
        return {"status": "ok"}

    @app.head("/health", summary="Liveness for load balancers that probe with HEAD")
    async def health_head() -> Response:
        return Response(status_code=200, media_type="application/json")

    @app.get("/ready", summary="200 when loaded and warmed up, else 503 with the state")
    async def ready() -> JSONResponse:
        snapshot = refused_start({**service.state.snapshot()}, keys)
        snapshot["activity"] = activity.snapshot(bool(snapshot["ready"]))
        snapshot["limits"] = limits()
        service.metrics.set_state(snapshot["state"])
        if keys is not None:  # open to anyone: no model path, token name or LoRA source
            snapshot = public_ready(snapshot)
        if snapshot["ready"]:
            return JSONResponse(snapshot)
        waiting = {} if snapshot["state"] == "failed" else {  # failed is terminal
            "Retry-After": str(READY_RETRY_AFTER_S)}
        return JSONResponse(snapshot, status_code=503, headers=should_retry(503, waiting))

    @app.post("/generate", summary="Generate images: bytes, or base64 JSON")
    async def generate(body: GenerateRequest, request: Request) -> Response:
        service.require_ready()
        if body.num_images > 1 and body.response_format == "bytes":
            raise InputError("num_images", "must be 1 unless response_format is b64_json")
        params = service.params_for(body.prompt, body.width, body.height,
                                    body.num_inference_steps, body.guidance_scale, body.seed,
                                    body.num_images, body.negative_prompt, body.true_cfg_scale)
        with activity.request():
            outcome = await service.generate(request, params, body.output_format)
        headers = {"X-Seed": str(outcome.seed),
                   "X-Generation-Seconds": f"{outcome.generation_s:.4f}",
                   "X-Queue-Wait-Seconds": f"{outcome.queue_wait_s:.4f}"}
        if body.response_format == "bytes":
            return Response(outcome.images[0], media_type=MIME_TYPES[body.output_format],
                            headers=headers)
        return JSONResponse({
            "images": [{"b64": base64.b64encode(data).decode("ascii"), "seed": outcome.seed + i}
                       for i, data in enumerate(outcome.images)],
            "seed": outcome.seed, "width": params.width, "height": params.height,
            "num_inference_steps": params.steps, "guidance_scale": params.guidance_scale,
            "output_format": body.output_format, "generation_s": outcome.generation_s,
            "queue_wait_s": outcome.queue_wait_s, "model": settings.model,
            "tiny": settings.tiny}, headers=headers)

    @app.post("/v1/images/generations", summary="OpenAI-compatible image generation")
    async def openai_generations(body: OpenAIImageRequest, request: Request) -> JSONResponse:
        service.require_ready()
        if body.response_format != "b64_json":
            raise InputError("response_format", "only b64_json is supported (no image URLs)")
        width, height = parse_size(body.size) if body.size is not None else (None, None)
        params = service.params_for(body.prompt, width, height, body.num_inference_steps,
                                    body.guidance_scale, body.seed, body.n,
                                    fields=("size", "size", "n"))
        with activity.request():
            outcome = await service.generate(request, params, body.output_format)
        return JSONResponse({
            "created": int(time.time()),
            "data": [{"b64_json": base64.b64encode(d).decode("ascii")} for d in outcome.images],
            "output_format": body.output_format,
            "size": f"{params.width}x{params.height}",
        }, headers={"X-Seed": str(outcome.seed),
                    "X-Generation-Seconds": f"{outcome.generation_s:.4f}"})

    @app.get("/model-status", summary="Model, strategy, devices, queue, timings, LoRA")
    def model_status() -> dict:
        return service.model_status()

    @app.post("/apply-lora", summary="Load a LoRA (hub id, or a path under FLUX_LORA_DIR) "
              "with a weight; generations go on while it downloads")
    def apply_lora(body: LoraRequest) -> dict:
        pipe = service.require_ready()
        source, weight = body.resolved()
        try:  # fetched outside the lock; the lock only for the swap (lora.py)
            return service.lora.apply(pipe, source, weight,
                                      body.adapter_name, body.weight_name,
                                      settings.hf_token, service.queue)
        except LoraProblem as exc:
            raise HTTPProblem(exc.status, exc.type, exc.message, exc.hint) from None
        except LoraError as exc:
            failure = explain(exc.cause, settings)
            raise HTTPProblem(400, failure.type, failure.message,
                              "diffusers refused these weights: a FLUX LoRA in safetensors "
                              "is needed") from None

    @app.post("/remove-lora", summary="Remove one LoRA adapter, or all")
    def remove_lora(body: RemoveLoraRequest | None = None) -> dict:
        pipe = service.require_ready()
        with service.queue.between_jobs():
            return service.lora.remove(pipe, body.adapter_name if body else None)

    @app.get("/lora-status", summary="Active LoRA adapters")
    def lora_status() -> dict:
        return service.lora.status()

    @app.get("/loras", summary="Active LoRA adapters (as /lora-status; the dual FP4/BF16 "
             "API's name)")
    def loras() -> dict:
        return service.lora.status()

    @app.get("/metrics", summary="Prometheus metrics")
    def metrics() -> Response:
        service.metrics.set_state(service.state.state)
        service.metrics.queue_depth.set(service.queue.depth)
        data, content_type = service.metrics.render()
        return Response(data, media_type=content_type)

    add_page_routes(app)  # the prompt page at / (not part of the API schema)
    return app
