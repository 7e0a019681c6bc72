"""The prompt page at `/`: plain HTML, CSS and JavaScript shipped as package data.

No build step and no third-party requests: the Content-Security-Policy lets the page talk to
its own origin only, so prompts never leave the connection (the VM may have no outside
network at all). The routes stay out of the OpenAPI schema: they are not part of the API.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import FastAPI, HTTPException
from fastapi.responses import Response

_JS = "text/javascript; charset=utf-8"
ASSETS = {"app.js": _JS, "auth.js": _JS, "logic.js": _JS, "results.js": _JS,
          "style.css": "text/css; charset=utf-8"}
PAGE_FILES = ("index.html", *ASSETS)

# Same origin only; images are blob: URLs (results) and data: URLs (session thumbnails).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    # the page changes with the server version; revalidating a few kB is cheap
    "Cache-Control": "no-cache",
}


@cache
def page_file(name: str) -> bytes:
    """The bytes of one shipped page file (read once)."""
    return resources.files(__package__).joinpath(name).read_bytes()


def page_size_bytes() -> int:
    """What the page adds to the package: the sum of its files' sizes."""
    return sum(len(page_file(name)) for name in PAGE_FILES)


def add_page_routes(app: FastAPI) -> None:
    """`GET /` (the page) and `GET /page/{name}` (its script and style), not in the schema."""

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def index() -> Response:
        return Response(page_file("index.html"), media_type="text/html; charset=utf-8",
                        headers=SECURITY_HEADERS)

    @app.api_route("/page/{name}", methods=["GET", "HEAD"], include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in ASSETS:
            raise HTTPException(404, f"no page file {name!r}")
        return Response(page_file(name), media_type=ASSETS[name], headers=SECURITY_HEADERS)
