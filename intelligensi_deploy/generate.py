"""`fluxdeploy generate`: one request to the server's `/generate` (docs/contract.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.health import server_url
from intelligensi_deploy.machines import connect_existing
from intelligensi_deploy.state import Deployment


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


def generate(base_url: str, request: GenerateRequest, timeout: float = 600.0) -> GenerateResult:
    """POST the request; errors from the server are shown with its own words."""
    try:
        response = httpx.post(f"{base_url}/generate", json=request.body(), timeout=timeout)
    except httpx.HTTPError as exc:
        raise FluxdeployError(
            f"Could not reach the server at {base_url}: {type(exc).__name__}: {exc}",
            fix="Check it with `fluxdeploy status` or `fluxdeploy doctor`.",
        ) from None
    if response.status_code != 200:
        detail = _detail(response)
        fix = {
            503: "The model is not ready yet: wait (`fluxdeploy status`); do not redeploy.",
            429: "The server's queue is full: retry in a few seconds.",
            422: "Correct the parameter named above.",
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
    detail = data.get("detail", data) if isinstance(data, dict) else data
    return str(detail)[:500]


def generate_on_deployment(dep: Deployment, request: GenerateRequest) -> GenerateResult:
    """Generate through an SSH tunnel to the deployment (works with the firewall closed)."""
    host = connect_existing(dep)
    try:
        with server_url(host, dep.port) as url:
            return generate(url, request)
    finally:
        host.close()
