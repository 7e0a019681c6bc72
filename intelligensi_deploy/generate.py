"""`fluxdeploy generate`: one request to the server's `/generate` (docs/contract.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from intelligensi_deploy.api_keys import bearer
from intelligensi_deploy.endpoint import Endpoint
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.health import server_url
from intelligensi_deploy.machines import connect_existing
from intelligensi_deploy.secrets import Token
from intelligensi_deploy.state import Deployment

URL_KEY_NAME = "FLUXDEPLOY_API_KEY"
UNAUTHORIZED_FIX = ("The server checks API keys and refused this one. For a deployment, "
                    "fluxdeploy sends the key it keeps beside the record: if the server's key "
                    "was changed elsewhere, `fluxdeploy key rotate` gives both a new one. With "
                    "--url, export FLUXDEPLOY_API_KEY=<the key>.")


@dataclass(frozen=True)
class GenerateRequest:
    prompt: str
    steps: int | None = None
    width: int = 1024
    height: int = 1024
    seed: int | None = None
    guidance: float | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"prompt": self.prompt, "width": self.width,
                                "height": self.height, "output_format": "png"}
        optional = {"num_inference_steps": self.steps, "seed": self.seed,
                    "guidance_scale": self.guidance}
        return body | {k: v for k, v in optional.items() if v is not None}


@dataclass(frozen=True)
class GenerateResult:
    image: bytes
    width: int
    height: int
    seed: str
    seconds: float


def generate(server: Endpoint | str, request: GenerateRequest, timeout: float = 600.0,
             api_key: Token | None = None) -> GenerateResult:
    """POST the request (with `api_key` as the bearer token); errors from the server are
    shown with its own words. A URL string: plain HTTP, or HTTPS with the system's trust."""
    endpoint = server if isinstance(server, Endpoint) else Endpoint(server.rstrip("/"))
    try:
        response = endpoint.post("/generate", json=request.body(), timeout=timeout,
                                 headers=bearer(api_key))
    except httpx.HTTPError as exc:
        raise FluxdeployError(
            f"Could not reach the server at {endpoint.base}: {type(exc).__name__}: {exc}",
            fix="Check it with `fluxdeploy status` or `fluxdeploy doctor`.",
        ) from None
    if response.status_code != 200:
        detail = _detail(response)
        fix = {
            503: "The model is not ready yet: wait (`fluxdeploy status`); do not redeploy.",
            429: "The server's queue is full: retry in a few seconds.",
            422: "Correct the parameter named above.",
            401: UNAUTHORIZED_FIX,
        }.get(response.status_code, "Run `fluxdeploy doctor`.")
        raise FluxdeployError(f"The server answered {response.status_code}: {detail}", fix=fix)
    return GenerateResult(
        image=response.content,
        width=request.width,
        height=request.height,
        seed=response.headers.get("X-Seed", "?"),
        seconds=float(response.headers.get("X-Generation-Seconds", "0") or 0),
    )


def _detail(response: httpx.Response) -> str:
    try:
        data: Any = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        error = data["error"]
        return f"{error.get('type', '')}: {error.get('message', '')}".strip(": ")[:500]
    detail = data.get("detail", data) if isinstance(data, dict) else data
    return str(detail)[:500]


def url_key(environ: Mapping[str, str] = os.environ) -> Token | None:
    """The key for a server given by URL: $FLUXDEPLOY_API_KEY, when set."""
    value = environ.get(URL_KEY_NAME, "").strip()
    return Token(URL_KEY_NAME, value) if value else None


def generate_on_deployment(dep: Deployment, request: GenerateRequest,
                           api_key: Token | None = None) -> GenerateResult:
    """Generate through an SSH tunnel to the deployment (works with the firewall closed)."""
    host = connect_existing(dep)
    try:
        with server_url(host, dep.port, dep.tls) as server:
            return generate(server, request, api_key=api_key)
    finally:
        host.close()
