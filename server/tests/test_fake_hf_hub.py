"""The fake Hugging Face Hub makes huggingface_hub and diffusers behave as against the real
one: genuine errors for gated, unknown and missing things; real downloads otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest


@pytest.fixture()
def hub_env(fake_hub, tmp_path):
    return {"cache_dir": str(tmp_path / "cache"), "endpoint": fake_hub.url}


def test_gated_repo_raises_genuine_gated_repo_error(hub_env, hub_names):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import GatedRepoError

    for token, status in ((False, 401), (hub_names["wrong_token"], 403)):
        with pytest.raises(GatedRepoError) as caught:
            hf_hub_download(hub_names["repo"], "model_index.json", token=token, **hub_env)
        assert caught.value.response.status_code == status
        assert caught.value.response.headers["X-Error-Code"] == "GatedRepo"


def test_unknown_repo_and_missing_file(hub_env, hub_names):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("nobody/nothing", "model_index.json", token=False, **hub_env)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(hub_names["repo"], "nope.json", token=hub_names["good_token"],
                        **hub_env)


DIFFUSERS_LOAD = """
import sys
from diffusers import FluxPipeline
pipe = FluxPipeline.from_pretrained(sys.argv[1], token=sys.argv[2], cache_dir=sys.argv[3])
print(type(pipe.transformer).__name__)
"""


def test_diffusers_loads_the_pipeline_by_repo_id_through_the_fake(fake_hub, hub_names,
                                                                   tmp_path):
    # huggingface_hub reads HF_ENDPOINT at import: a fresh process, as the server is
    env = {**os.environ, "HF_ENDPOINT": fake_hub.url, "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_TOKEN", None)
    result = subprocess.run(
        [sys.executable, "-c", DIFFUSERS_LOAD, hub_names["open_repo"], hub_names["good_token"],
         str(tmp_path / "cache")], env=env, capture_output=True, text=True, timeout=120,
        check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("FluxTransformer2DModel")


def test_range_requests_and_headers(fake_hub, hub_names):
    url = f"{fake_hub.url}/{hub_names['repo']}/resolve/main/model_index.json"
    auth = {"Authorization": f"Bearer {hub_names['good_token']}"}
    head = httpx.head(url, headers=auth)
    assert head.status_code == 200 and head.headers["X-Repo-Commit"]
    size = int(head.headers["Content-Length"])
    part = httpx.get(url, headers={**auth, "Range": "bytes=10-"})
    assert part.status_code == 206 and len(part.content) == size - 10
    assert all(r.authorized in (True, False) for r in fake_hub.requests)  # no token values


def test_standalone_main_serves_a_folder(tiny_dir):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.fake_hf_hub", "--host", "127.0.0.1", "--port", "0",
         "--repo", "org/open", "--folder", str(tiny_dir)],
        cwd=str(Path(__file__).resolve().parents[2]), stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "fake hub serving org/open on http://127.0.0.1:" in line
        url = line.split(" on ")[1].strip()
        info = httpx.get(f"{url}/api/models/org/open").json()
        assert info["id"] == "org/open" and "model_index.json" in [
            s["rfilename"] for s in info["siblings"]]
    finally:
        proc.terminate()
        proc.wait(10)
