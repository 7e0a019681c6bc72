"""The API key over HTTP: the ASGI middleware that answers 401, and /ready without details.

The middleware sits inside the request-log middleware, so a refused request still gets its
one log line (with `auth=missing` or `auth=rejected`, never the header).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from flux_server.auth import ApiKeys, needs_key
from flux_server.metrics import Metrics
from flux_server.reqlog import request_fields

HIDDEN = "hidden"  # /ready's `model` while API keys are on
DETAILS_ELSEWHERE = ("details: GET /model-status (with the API key) or the server log")
WWW_AUTHENTICATE = 'Bearer realm="flux_server"'


def unauthorized(reason: str, keys_error: bool = False) -> JSONResponse:
    """The 401 answer: the server's usual error body and `WWW-Authenticate: Bearer`."""
    if keys_error:
        message = "the server's API keys cannot be read, so no key is accepted"
        hint = "the operator must fix FLUX_API_KEYS_FILE (the server log says what is wrong)"
    elif reason == "missing":
        message = "this server needs an API key"
        hint = "send the header `Authorization: Bearer <key>` with a key the operator gave you"
    else:
        message = "the API key was not accepted"
        hint = "check the key (it may have been revoked); ask the operator for a valid one"
    challenge = WWW_AUTHENTICATE if reason == "missing" else \
        f'{WWW_AUTHENTICATE}, error="invalid_token"'
    return JSONResponse({"error": {"type": "Unauthorized", "message": message, "hint": hint}},
                        status_code=401, headers={"WWW-Authenticate": challenge})


def app_path(scope: dict[str, Any]) -> str:
    """The request's path below the app's root (a Ray Serve route prefix, a proxy's)."""
    path, root = scope.get("path", "/"), scope.get("root_path") or ""
    if root and path.startswith(root):
        path = path[len(root):] or "/"
    return path


class ApiKeyMiddleware:
    """401 for every request that needs the key (auth.needs_key) and lacks a valid one."""

    def __init__(self, app: Any, keys: ApiKeys, metrics: Metrics,
                 metrics_public: bool = False) -> None:
        self.app, self.keys, self.metrics = app, keys, metrics
        self.metrics_public = metrics_public

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not needs_key(app_path(scope), self.metrics_public):
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization")
        if self.keys.allows(header):
            await self.app(scope, receive, send)
            return
        reason = "missing" if header is None else "rejected"
        fields = request_fields(scope)
        fields["auth"] = reason
        fields["client"] = (scope.get("client") or ("-",))[0]  # who: a storm is diagnosed
        self.metrics.unauthorized.labels(reason=reason).inc()
        await unauthorized(reason, self.keys.error is not None)(scope, receive, send)


def _neutral(error: Any) -> Any:
    """An error with its type only: messages may name the model path, a token variable or a
    LoRA source."""
    if isinstance(error, dict):
        if error.get("type") == "ApiKeysUnreadable":  # written without a path or a key
            return error
        return {"type": error.get("type", "Error"), "message": DETAILS_ELSEWHERE,
                "hint": DETAILS_ELSEWHERE}
    return DETAILS_ELSEWHERE if error else error


def public_ready(body: dict) -> dict:
    """/ready for anyone while API keys are on: no model path, token name or LoRA source.
    `model` says `hidden`; errors keep their type; a cluster's replicas keep their states."""
    out = {**body, "model": HIDDEN, "error": _neutral(body.get("error"))}
    cluster = body.get("cluster")
    if isinstance(cluster, dict):
        serve = cluster.get("serve") or {}
        out["cluster"] = {
            **cluster,
            "replicas": [{**r, "error": _neutral(r.get("error"))}
                         for r in cluster.get("replicas", [])],
            "serve": {k: v for k, v in serve.items() if k != "message"},
        }
    return out


def refused_start(body: dict, keys: ApiKeys | None) -> dict:
    """/ready when the keys file could not be read at start: failed, ApiKeysUnreadable."""
    if keys is None or keys.startup_error is None:
        return body
    error = keys.startup_error
    return {**body, "state": "failed", "ready": False,
            "error": {"type": "ApiKeysUnreadable", "message": str(error), "hint": error.hint}}
