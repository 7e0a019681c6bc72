"""The prompt page as files and routes (no browser): served at / from package data, outside
the API schema, same-origin only, and small. The browser tests are test_page_browser.py."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from flux_server.app import create_app
from flux_server.config import Settings
from flux_server.page import CONTENT_SECURITY_POLICY, PAGE_FILES, page_file, page_size_bytes

SERVER_ROOT = Path(__file__).resolve().parents[1]
IMAGE_BUDGET_BYTES = 1_000_000  # issue 10: the image grows by less than 1 MB for the page


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(Settings(model="tiny")))  # no lifespan: nothing loads


def test_page_is_served_at_root_with_its_script_and_style(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    for asset, kind in (("page/app.js", "text/javascript"), ("page/style.css", "text/css")):
        assert f'"{asset}"' in html  # relative: works behind a tunnel or a route prefix
        response = client.get(f"/{asset}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind)
        assert response.content == page_file(asset.split("/")[1])
    assert client.head("/").status_code == 200
    app_js = page_file("app.js").decode()
    for module in ("logic.js", "results.js"):  # ES modules imported by app.js
        assert f'from "./{module}"' in app_js
        assert client.get(f"/page/{module}").headers["content-type"].startswith(
            "text/javascript")


def test_unknown_page_file_is_404(client: TestClient) -> None:
    assert client.get("/page/secrets.txt").status_code == 404
    assert client.get("/page/..%2Fapp.py").status_code == 404


def test_page_routes_stay_out_of_the_api_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths and not any(p.startswith("/page") for p in paths)
    assert "/generate" in paths and "/ready" in paths  # the API itself is still there


def test_browser_may_only_talk_to_the_server_itself(client: TestClient) -> None:
    headers = client.get("/").headers
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    directives = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src"):
        assert directives[name] == "'self'", name
    assert headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("name", PAGE_FILES)
def test_page_files_reference_nothing_outside_the_server(name: str) -> None:
    text = page_file(name).decode("utf-8")
    assert not re.search(r"\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), \
        f"{name} names another host: the page must work offline and never leak prompts"
    assert "@import" not in text and "@font-face" not in text
    assert "url(" not in text.replace("URL(", "")  # no CSS url(): every byte is in the files


def test_controls_have_labels() -> None:
    html = page_file("index.html").decode("utf-8")
    controls = re.findall(r"<(?:input|select|textarea)\b[^>]*\bid=\"([^\"]+)\"", html)
    labelled = set(re.findall(r"<label[^>]*\bfor=\"([^\"]+)\"", html))
    # the Random checkbox is wrapped by its label
    wrapped = set(re.findall(r"<label[^>]*>\s*<input[^>]*\bid=\"([^\"]+)\"", html))
    assert set(controls) - labelled - wrapped == set()
    assert len(controls) >= 9


def test_page_size_is_far_below_the_image_budget() -> None:
    sizes = {name: len(page_file(name)) for name in PAGE_FILES}
    total = page_size_bytes()
    print(f"\npage files: {sizes}; total {total} bytes = {total / IMAGE_BUDGET_BYTES:.1%} "
          f"of the 1 MB budget")
    assert total == sum(sizes.values()) < IMAGE_BUDGET_BYTES


def test_wheel_ships_the_page(tmp_path: Path) -> None:
    """The image installs flux_server from a built wheel: the page must be package data."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--no-index", "-q", "-w", str(tmp_path), str(SERVER_ROOT)],
                   check=True, capture_output=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("flux_server-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for name in PAGE_FILES:
            assert archive.read(f"flux_server/page/{name}") == page_file(name)
    assert "flux_server/page/__init__.py" in names
