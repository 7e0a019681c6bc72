"""diagnose(): real-format log excerpts in, findings out.

The excerpts are what the tools really print: tracebacks captured from diffusers 0.42 /
huggingface_hub against a stand-in hub answering like huggingface.co, uvicorn's own lines,
docker's and the registries' messages (NOTES.md), torch's OOM text. Most are passed through
`docker logs -t` timestamps and uvicorn's ANSI colours, as doctor reads them.
"""

from __future__ import annotations

import pytest

from intelligensi_deploy.diagnosis.diagnose import (
    clean_lines,
    diagnose,
    has_errors,
    parse_log,
    server_state,
)
from intelligensi_deploy.diagnosis.findings import CATALOGUE, FINDING_IDS
from intelligensi_deploy.doctor.report import diagnose_exit_code

# --------------------------------------------------------------------------- helpers


def docker_t(text: str, start_second: int = 10) -> str:
    """`text` as `docker logs -t` prints it: an RFC 3339 nano timestamp before each line."""
    lines = text.split("\n")
    return "\n".join(f"2026-11-23T18:{start_second + i // 60:02d}:{i % 60:02d}.{i:09d}Z {line}"
                     for i, line in enumerate(lines))


def colour(text: str) -> str:
    """uvicorn's colourised level names and bold addresses, as a TTY container prints them."""
    return (text.replace("INFO:", "\x1b[32mINFO\x1b[0m:")
            .replace("ERROR:", "\x1b[31mERROR\x1b[0m:")
            .replace("WARNING:", "\x1b[33mWARNING\x1b[0m:")
            .replace("http://0.0.0.0:8000", "\x1b[1mhttp://0.0.0.0:8000\x1b[0m")
            .replace("http://127.0.0.1:8000", "\x1b[1mhttp://127.0.0.1:8000\x1b[0m"))


def real(text: str) -> str:
    """Both: what `docker logs -t` of a TTY container shows."""
    return docker_t(colour(text))


def ids(findings) -> list[str]:
    return [f.id for f in findings]


def error_ids(findings) -> list[str]:
    return [f.id for f in findings if f.severity == "error"]


def only(findings, finding_id: str):
    found = [f for f in findings if f.id == finding_id]
    assert len(found) == 1, ids(findings)
    return found[0]


# --------------------------------------------------------------------------- excerpts

UVICORN_START = """\
INFO:     Started server process [1]
INFO:     Waiting for application startup.
INFO:     Application startup complete.
INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)"""

TQDM_FETCH = ("\rFetching 23 files:   0%|          | 0/23 [00:00<?, ?it/s]"
              "\rFetching 23 files:  43%|████▎     | 10/23 [01:12<01:20,  6.21s/it]"
              "\rFetching 23 files: 100%|██████████| 23/23 [02:41<00:00,  7.02s/it]")
TQDM_LOAD = ("\rLoading pipeline components...:   0%|          | 0/7 [00:00<?, ?it/s]"
             "\rLoading pipeline components...:  57%|█████▋    | 4/7 [00:03<00:02,  1.21it/s]"
             "\rLoading pipeline components...: 100%|██████████| 7/7 [00:05<00:00,  1.30it/s]")

HEALTHY = f"""\
{UVICORN_START}
INFO:     flux_server.loader: loading model=black-forest-labs/FLUX.1-schnell
state=downloading model=black-forest-labs/FLUX.1-schnell
INFO:     172.17.0.1:40012 - "GET /health HTTP/1.1" 200 OK
INFO:     172.17.0.1:40014 - "GET /ready HTTP/1.1" 503 Service Unavailable
{TQDM_FETCH}
state=loading
INFO:     flux_server.loader: memory plan: model-offload nf4 bf16 (1x A10 24 GB)
{TQDM_LOAD}
/opt/venv/lib/python3.11/site-packages/diffusers/utils/deprecation_utils.py:23: FutureWarning: `torch_dtype` is deprecated and will be removed in version 1.0.0. Please use `dtype` instead.
  deprecate("torch_dtype", "1.0.0", _TORCH_DTYPE_DEPRECATION_MESSAGE)
[transformers] `CLIPImageProcessor` requires torchvision (not installed); falling back to `CLIPImageProcessorPil` for backward compatibility. Install torchvision to use the default backend, or import `CLIPImageProcessorPil` directly to silence this warning.
state=warming
state=ready
INFO:     flux_server.loader: model ready: model=black-forest-labs/FLUX.1-schnell strategy=model-offload dtype=bf16
INFO:     172.17.0.1:40020 - "GET /ready HTTP/1.1" 200 OK
request id=4f1c route=/generate status=200 width=1024 height=1024 steps=4 queue_wait_s=0.00 generation_s=2.91
INFO:     172.17.0.1:40022 - "POST /generate HTTP/1.1" 200 OK
request id=4f1d route=/generate status=422 width=5000 height=1024 steps=4 queue_wait_s=0.00 generation_s=0.00
INFO:     172.17.0.1:40024 - "POST /generate HTTP/1.1" 422 Unprocessable Entity
request id=4f1e route=/generate status=429 width=1024 height=1024 steps=4 queue_wait_s=0.00 generation_s=0.00
INFO:     172.17.0.1:40026 - "POST /generate HTTP/1.1" 429 Too Many Requests
INFO:     172.17.0.1:40028 - "GET /metrics HTTP/1.1" 200 OK
INFO:     172.17.0.1:40030 - "GET /docs HTTP/1.1" 404 Not Found"""

HUB_WARNING_GATED = """\
Couldn't connect to the Hub: 401 Client Error. (Request ID: Root=1-6745a1b2-3c4d5e6f7a8b9c0d1e2f3a4b)

Cannot access gated repo for url https://huggingface.co/api/models/black-forest-labs/FLUX.1-dev.
Access to model black-forest-labs/FLUX.1-dev is restricted. You must have access to it and be authenticated to access it. Please log in.
Will try to load from local cache."""

CACHE_FALLBACK_OSERROR = """\
Traceback (most recent call last):
  File "/app/flux_server/loader.py", line 241, in _load
    pipe = FluxPipeline.from_pretrained(path, **kwargs)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/opt/venv/lib/python3.11/site-packages/huggingface_hub/utils/_validators.py", line 89, in _inner_fn
    return fn(*args, **kwargs)
           ^^^^^^^^^^^^^^^^^^^
  File "/opt/venv/lib/python3.11/site-packages/diffusers/pipelines/pipeline_utils.py", line 871, in from_pretrained
    cached_folder = cls.download(
                    ^^^^^^^^^^^^^
  File "/opt/venv/lib/python3.11/site-packages/diffusers/pipelines/pipeline_utils.py", line 1831, in download
    raise EnvironmentError(
OSError: Cannot load model {model}: the model is not fully cached locally (Cannot find an appropriate cached snapshot folder for the specified revision on the local disk and outgoing traffic has been disabled. To enable repo look-ups and downloads online, pass 'local_files_only=False' as input.) and an error occurred while trying to fetch metadata from the Hub. Please check out the root cause in the stacktrace above."""

CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"

GATED = (HUB_WARNING_GATED + """
Traceback (most recent call last):
  File "/opt/venv/lib/python3.11/site-packages/huggingface_hub/utils/_http.py", line 866, in hf_raise_for_status
    response.raise_for_status()
  File "/opt/venv/lib/python3.11/site-packages/httpx2/_models.py", line 841, in raise_for_status
    raise HTTPStatusError(message, request=request, response=self)
httpx2.HTTPStatusError: Client error '401 Unauthorized' for url 'https://huggingface.co/api/models/black-forest-labs/FLUX.1-dev'
For more information check: https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/401
""" + CAUSE + """Traceback (most recent call last):
  File "/opt/venv/lib/python3.11/site-packages/diffusers/pipelines/pipeline_utils.py", line 1621, in download
    info = model_info(pretrained_model_name, token=token, revision=revision)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/opt/venv/lib/python3.11/site-packages/huggingface_hub/hf_api.py", line 3215, in model_info
    hf_raise_for_status(r)
  File "/opt/venv/lib/python3.11/site-packages/huggingface_hub/utils/_http.py", line 892, in hf_raise_for_status
    raise _format(GatedRepoError, message, response, repo_type=repo_type, repo_id=repo_id) from e
huggingface_hub.errors.GatedRepoError: 401 Client Error. (Request ID: Root=1-6745a1b2-3c4d5e6f7a8b9c0d1e2f3a4b)

Cannot access gated repo for url https://huggingface.co/api/models/black-forest-labs/FLUX.1-dev.
Access to model black-forest-labs/FLUX.1-dev is restricted. You must have access to it and be authenticated to access it. Please log in.
""" + CAUSE + CACHE_FALLBACK_OSERROR.format(model="black-forest-labs/FLUX.1-dev"))

BAD_TOKEN = """\
Couldn't connect to the Hub: Client error '401 Unauthorized' for url 'https://huggingface.co/api/models/black-forest-labs/FLUX.1-dev' (Request ID: Root=1-6745a1b2-aaaa)
For more information check: https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/401

Invalid credentials in Authorization header
Will try to load from local cache.
Traceback (most recent call last):
  File "/opt/venv/lib/python3.11/site-packages/huggingface_hub/utils/_http.py", line 866, in hf_raise_for_status
    response.raise_for_status()
httpx2.HTTPStatusError: Client error '401 Unauthorized' for url 'https://huggingface.co/api/models/black-forest-labs/FLUX.1-dev'
For more information check: https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/401
""" + CAUSE + """Traceback (most recent call last):
  File "/opt/venv/lib/python3.11/site-packages/huggingface_hub/utils/_http.py", line 996, in hf_raise_for_status
    raise _format(HfHubHTTPError, str(e), response) from e
huggingface_hub.errors.HfHubHTTPError: Client error '401 Unauthorized' for url 'https://huggingface.co/api/models/black-forest-labs/FLUX.1-dev' (Request ID: Root=1-6745a1b2-aaaa)
For more information check: https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/401

Invalid credentials in Authorization header
""" + CAUSE + CACHE_FALLBACK_OSERROR.format(model="black-forest-labs/FLUX.1-dev")

REPO_NOT_FOUND = """\
Traceback (most recent call last):
  File "/opt/venv/lib/python3.11/site-packages/huggingface_hub/utils/_http.py", line 950, in hf_raise_for_status
    raise _format(RepositoryNotFoundError, message, response, repo_type=repo_type, repo_id=repo_id) from e
huggingface_hub.errors.RepositoryNotFoundError: 404 Client Error. (Request ID: Root=1-6745a1b2-bbbb)

Repository Not Found for url: https://huggingface.co/api/models/black-forest-labs/FLUX.1-shnell.
Please make sure you specified the correct `repo_id` and `repo_type`.
If you are trying to access a private or gated repo, make sure you are authenticated and your token has the required permissions.
For more details, see https://huggingface.co/docs/huggingface_hub/authentication
""" + CAUSE + CACHE_FALLBACK_OSERROR.format(model="black-forest-labs/FLUX.1-shnell")

OFFLINE = """\
Couldn't connect to the Hub: Cannot reach https://huggingface.co/api/models/black-forest-labs/FLUX.1-schnell: offline mode is enabled. To disable it, please unset the `HF_HUB_OFFLINE` environment variable..
Will try to load from local cache.
Traceback (most recent call last):
  File "/opt/venv/lib/python3.11/site-packages/huggingface_hub/utils/_http.py", line 294, in _http_backoff_base
    raise OfflineModeIsEnabled(
huggingface_hub.errors.OfflineModeIsEnabled: Cannot reach https://huggingface.co/api/models/black-forest-labs/FLUX.1-schnell: offline mode is enabled. To disable it, please unset the `HF_HUB_OFFLINE` environment variable.
""" + CAUSE + CACHE_FALLBACK_OSERROR.format(model="black-forest-labs/FLUX.1-schnell")

NO_DNS = """\
Couldn't connect to the Hub: [Errno -3] Temporary failure in name resolution.
Will try to load from local cache.
Traceback (most recent call last):
  File "/opt/venv/lib/python3.11/site-packages/httpcore2/_backends/sync.py", line 207, in connect_tcp
    sock = socket.create_connection(
           ^^^^^^^^^^^^^^^^^^^^^^^^^
socket.gaierror: [Errno -3] Temporary failure in name resolution
""" + CAUSE + """Traceback (most recent call last):
  File "/opt/venv/lib/python3.11/site-packages/httpx2/_transports/default.py", line 101, in map_httpcore_exceptions
    yield
httpx2.ConnectError: [Errno -3] Temporary failure in name resolution
""" + CAUSE + CACHE_FALLBACK_OSERROR.format(model="black-forest-labs/FLUX.1-schnell")

DEVICE_MAP_AUTO = """\
INFO:     flux_server.loader: memory plan: device_map=auto (FLUX_DEVICE_MAP)
Traceback (most recent call last):
  File "/app/flux_server/loader.py", line 241, in _load
    pipe = FluxPipeline.from_pretrained(path, device_map=settings.device_map, **kwargs)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/opt/venv/lib/python3.11/site-packages/huggingface_hub/utils/_validators.py", line 89, in _inner_fn
    return fn(*args, **kwargs)
           ^^^^^^^^^^^^^^^^^^^
  File "/opt/venv/lib/python3.11/site-packages/diffusers/pipelines/pipeline_utils.py", line 846, in from_pretrained
    raise NotImplementedError(
NotImplementedError: auto not supported. Supported strategies are: balanced, cuda, cpu"""

CUDA_OOM = """\
Traceback (most recent call last):
  File "/app/flux_server/loader.py", line 250, in _load
    pipe.to("cuda")
  File "/opt/venv/lib/python3.11/site-packages/torch/nn/modules/module.py", line 1355, in convert
    return t.to(
           ^^^^^
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 72.00 MiB. GPU 0 has a total capacity of 22.07 GiB of which 40.44 MiB is free. Including non-PyTorch memory, this process has 22.02 GiB memory in use. Of the allocated memory 21.65 GiB is allocated by PyTorch, and 95.52 MiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)"""

CUDA_OOM_OLD = """\
Traceback (most recent call last):
  File "/app/server.py", line 40, in <module>
    pipe.to("cuda")
torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 22.20 GiB total capacity; 21.43 GiB already allocated; 8.12 MiB free; 21.45 GiB reserved in total by PyTorch) If reserved memory is >> allocated memory try setting max_split_size_mb to avoid fragmentation.  See documentation for Memory Management and PYTORCH_CUDA_ALLOC_CONF"""

NO_NVIDIA_DRIVER = """\
Traceback (most recent call last):
  File "/app/flux_server/loader.py", line 250, in _load
    pipe.to("cuda")
  File "/opt/venv/lib/python3.11/site-packages/torch/cuda/__init__.py", line 372, in _lazy_init
    torch._C._cuda_init()
RuntimeError: Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU and installed a driver from http://www.nvidia.com/Download/index.aspx"""

DISK_FULL = """\
state=downloading model=black-forest-labs/FLUX.1-dev
/opt/venv/lib/python3.11/site-packages/huggingface_hub/file_download.py:771: UserWarning: Not enough free disk space to download the file. The expected file size is: 23802.00 MB. The target location /data/hf/hub/models--black-forest-labs--FLUX.1-dev/blobs only has 10240.00 MB free disk space.
  warnings.warn(
Traceback (most recent call last):
  File "/opt/venv/lib/python3.11/site-packages/huggingface_hub/file_download.py", line 1023, in _download_to_tmp_and_move
    http_get(
  File "/opt/venv/lib/python3.11/site-packages/huggingface_hub/file_download.py", line 452, in http_get
    temp_file.write(chunk)
OSError: [Errno 28] No space left on device"""

MODULE_CRASH = """\
Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
  File "<frozen runpy>", line 88, in _run_code
  File "/app/flux_server/__main__.py", line 3, in <module>
    from flux_server.app import main
  File "/app/flux_server/app.py", line 12, in <module>
    import sentencepiece
ModuleNotFoundError: No module named 'sentencepiece'"""

ASGI_REQUEST_ERROR = """\
INFO:     172.17.0.1:40100 - "POST /generate HTTP/1.1" 500 Internal Server Error
ERROR:    Exception in ASGI application
Traceback (most recent call last):
  File "/opt/venv/lib/python3.11/site-packages/uvicorn/protocols/http/h11_impl.py", line 411, in run_asgi
    result = await app(  # type: ignore[func-returns-value]
             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/app/flux_server/app.py", line 88, in generate
    raise KeyError(name)
KeyError: 'lora-x'"""


# --------------------------------------------------------------------------- cleaning


def test_clean_lines_strips_timestamps_ansi_and_progress_redraws() -> None:
    raw = docker_t(colour(UVICORN_START) + "\n" + TQDM_FETCH)
    lines = clean_lines(raw)
    assert lines[3] == "INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)"
    assert lines[4].startswith("Fetching 23 files: 100%|")
    assert not any("\x1b" in line or "\r" in line or line.startswith("2026-") for line in lines)


def test_clean_lines_keeps_traceback_indentation_after_timestamps() -> None:
    lines = clean_lines(docker_t(MODULE_CRASH))
    assert lines[1].startswith('  File "<frozen runpy>"')
    assert lines[-1] == "ModuleNotFoundError: No module named 'sentencepiece'"


def test_clean_lines_handles_crlf() -> None:
    assert clean_lines("a\r\nb\r\n") == ["a", "b", ""]


def test_parse_log_links_chained_tracebacks_into_one_chain() -> None:
    parsed = parse_log(clean_lines(GATED))
    assert len(parsed.chains) == 1
    heads = [e.splitlines()[0].split(":")[0] for e in parsed.chains[0].exceptions]
    assert heads == ["httpx2.HTTPStatusError", "huggingface_hub.errors.GatedRepoError", "OSError"]
    assert "Cannot access gated repo" in parsed.chains[0].exceptions[1]


def test_separate_tracebacks_are_separate_chains() -> None:
    parsed = parse_log(clean_lines(MODULE_CRASH + "\n" + CUDA_OOM_OLD))
    assert len(parsed.chains) == 2


@pytest.mark.parametrize(("line", "state"), [
    ("state=downloading model=x", "downloading"),
    ('{"state": "warming", "ready": false}', "warming"),
    ("INFO:     flux_server.loader: model ready: model=x strategy=gpu dtype=bf16", "ready"),
    ("ERROR:    flux_server.loader: model load failed: model=x type=OSError", "failed"),
    ("INFO:     flux_server.loader: loading model=tiny", "loading"),
    ('INFO:     172.17.0.1:1 - "GET /ready HTTP/1.1" 503 Service Unavailable', None),
])
def test_server_state_lines(line: str, state: str | None) -> None:
    assert server_state(line) == state


# --------------------------------------------------------------------------- healthy


@pytest.mark.parametrize("transform", [lambda t: t, docker_t, colour, real])
def test_healthy_log_has_no_finding(transform) -> None:
    assert diagnose(transform(HEALTHY)) == []


def test_healthy_tiny_cpu_server_log_has_no_finding() -> None:
    log = real(UVICORN_START + """
INFO:     flux_server.loader: loading model=tiny (tiny random-weight test pipeline)
INFO:     flux_server.loader: memory plan: cpu fp32 (no GPU)
INFO:     flux_server.loader: model ready: model=tiny (tiny random-weight test pipeline) strategy=cpu dtype=fp32
INFO:     127.0.0.1:50522 - "GET /ready HTTP/1.1" 200 OK""")
    assert diagnose(log) == []


def test_empty_log_has_no_finding() -> None:
    assert diagnose("") == []
    assert diagnose("\n\n   \n") == []


def test_hub_unreachable_but_cached_is_only_information() -> None:
    log = real(UVICORN_START + """
Couldn't connect to the Hub: [Errno -3] Temporary failure in name resolution.
Will try to load from local cache.
INFO:     flux_server.loader: model ready: model=black-forest-labs/FLUX.1-schnell strategy=gpu dtype=bf16""")
    findings = diagnose(log)
    assert ids(findings) == ["hf-unreachable"]
    assert findings[0].severity == "info"
    assert not has_errors(findings)


def test_hub_refusal_with_the_model_cached_is_a_warning_not_an_error() -> None:
    log = real(UVICORN_START + "\n" + HUB_WARNING_GATED + """
INFO:     flux_server.loader: model ready: model=black-forest-labs/FLUX.1-dev strategy=gpu dtype=bf16""")
    findings = diagnose(log)
    assert ids(findings) == ["hf-auth"]
    assert findings[0].severity == "warning"
    assert diagnose_exit_code(findings) == 0


def test_cuda_oom_the_server_recovered_from_is_not_an_error() -> None:
    log = real("""\
INFO:     flux_server.loader: memory plan: gpu bf16 (1x A100 40 GB)
WARNING:  flux_server.loader: CUDA out of memory with gpu bf16; falling back to model-offload bf16
INFO:     flux_server.loader: memory plan: model-offload bf16 (fallback)
INFO:     flux_server.loader: model ready: model=black-forest-labs/FLUX.1-schnell strategy=model-offload dtype=bf16""")
    findings = diagnose(log)
    assert error_ids(findings) == []
    assert only(findings, "cuda-oom").severity == "info"


def test_unable_to_find_image_locally_is_normal() -> None:
    log = """\
Unable to find image 'ghcr.io/intelligensi/flux-server:latest' locally
latest: Pulling from intelligensi/flux-server
Digest: sha256:4f0c5a3b2e1d
Status: Downloaded newer image for ghcr.io/intelligensi/flux-server:latest"""
    assert diagnose(log) == []


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize("line", [
    'Error response from daemon: Head "https://ghcr.io/v2/intelligensi/flux-server/manifests/latest": unauthorized',
    'Error response from daemon: Get "https://ghcr.io/v2/": denied: denied',
    'Error response from daemon: Head "http://localhost:5000/v2/flux-server/manifests/cpu": no basic auth credentials',
    "Error response from daemon: login attempt to http://localhost:5000/v2/ failed with status: 401 Unauthorized",
    "Error response from daemon: pull access denied for intelligensi/flux-server, repository does not exist or may require 'docker login': denied: requested access to the resource is denied",
    'docker: Error response from daemon: Head "https://ghcr.io/v2/intelligensi/flux-server/manifests/latest": unauthorized.',
    'failed to resolve reference "ghcr.io/intelligensi/flux-server:latest": failed to authorize: failed to fetch anonymous token: unexpected status from GET request to https://ghcr.io/token?scope=repository%3Aintelligensi%2Fflux-server%3Apull&service=ghcr.io: 401 Unauthorized',
])
def test_registry_refusals_are_ghcr_auth(line: str) -> None:
    findings = diagnose(docker_t(f"latest: Pulling from intelligensi/flux-server\n{line}"))
    assert error_ids(findings) == ["ghcr-auth"]
    assert findings[0].evidence == (line.strip(),)


@pytest.mark.parametrize("line", [
    "Error response from daemon: manifest for ghcr.io/intelligensi/flux-server:v9 not found: manifest unknown: manifest unknown",
    "Error response from daemon: manifest unknown",
    "docker: invalid reference format: repository name (intelligensi/Flux-Server) must be lowercase.",
    "Error response from daemon: No such image: fluxdeploy/flux-server:cpu",
])
def test_missing_images_are_image_not_found(line: str) -> None:
    assert error_ids(diagnose(docker_t(line))) == ["image-not-found"]


def test_docker_socket_permission_is_not_a_registry_problem() -> None:
    line = ("docker: permission denied while trying to connect to the Docker daemon socket at "
            "unix:///var/run/docker.sock: Head \"http://%2Fvar%2Frun%2Fdocker.sock/_ping\": dial "
            "unix /var/run/docker.sock: connect: permission denied")
    assert "ghcr-auth" not in ids(diagnose(line))


def test_executable_not_found_is_not_image_not_found() -> None:
    line = ('docker: Error response from daemon: failed to create task for container: failed to '
            'create shim task: OCI runtime create failed: runc create failed: unable to start '
            'container process: exec: "pyhton": executable file not found in $PATH: unknown.')
    assert "image-not-found" not in ids(diagnose(line))


# --------------------------------------------------------------------------- Hugging Face


def test_gated_repo_leads_with_hf_auth_and_hides_the_oserror_it_caused() -> None:
    findings = diagnose(real(UVICORN_START + "\nstate=downloading\n" + GATED
                             + "\nstate=failed"))
    assert ids(findings) == ["hf-auth"]
    finding = findings[0]
    assert finding.severity == "error"
    assert finding.evidence[0].startswith("huggingface_hub.errors.GatedRepoError: 401 Client Error")
    assert any("Cannot access gated repo for url" in e for e in finding.evidence)
    assert finding.doc == "hf-auth"


def test_gated_repo_without_timestamps_or_colours() -> None:
    assert ids(diagnose(GATED)) == ["hf-auth"]


def test_invalid_token_is_hf_auth() -> None:
    findings = diagnose(real(BAD_TOKEN))
    assert ids(findings) == ["hf-auth"]
    assert any("Invalid credentials in Authorization header" in e for e in findings[0].evidence)


def test_repository_not_found_is_hf_auth_with_a_wrong_name_title() -> None:
    findings = diagnose(docker_t(REPO_NOT_FOUND))
    assert ids(findings) == ["hf-auth"]
    assert "not found" in findings[0].title
    assert findings[0].evidence[0].startswith("huggingface_hub.errors.RepositoryNotFoundError")


def test_hub_403_forbidden_is_hf_auth() -> None:
    log = """\
Traceback (most recent call last):
  File "/opt/venv/lib/python3.11/site-packages/huggingface_hub/utils/_http.py", line 975, in hf_raise_for_status
    raise _format(HfHubHTTPError, message, response) from e
huggingface_hub.errors.HfHubHTTPError: (Request ID: Root=1-6745)

403 Forbidden: Please enable access to public gated repositories in your fine-grained token settings to view this repository..
Cannot access content at: https://huggingface.co/api/models/black-forest-labs/FLUX.1-dev.
Make sure your token has the correct permissions."""
    assert ids(diagnose(log)) == ["hf-auth"]


def test_server_failure_line_alone_names_the_cause() -> None:
    log = real("ERROR:    flux_server.loader: model load failed: model=black-forest-labs/FLUX.1-dev "
               "type=GatedRepoError message=401 Client Error. hint=accept its licence")
    assert error_ids(diagnose(log)) == ["hf-auth"]


def test_offline_mode_without_cache_is_hf_unreachable() -> None:
    findings = diagnose(real(OFFLINE))
    assert ids(findings) == ["hf-unreachable"]
    assert findings[0].severity == "error"
    assert "OfflineModeIsEnabled" in findings[0].evidence[0]


def test_dns_failure_without_cache_is_hf_unreachable_not_a_crash() -> None:
    findings = diagnose(real(NO_DNS))
    assert ids(findings) == ["hf-unreachable"]
    assert findings[0].severity == "error"


def test_older_diffusers_connection_message_is_hf_unreachable() -> None:
    line = ("OSError: We couldn't connect to 'https://huggingface.co' to load this model, couldn't "
            "find it in the cached files and it looks like black-forest-labs/FLUX.1-schnell is not "
            "the path to a directory containing a file named diffusion_pytorch_model.safetensors")
    assert error_ids(diagnose(line)) == ["hf-unreachable"]


# --------------------------------------------------------------------------- model / GPU


def test_device_map_auto() -> None:
    findings = diagnose(real(UVICORN_START + "\n" + DEVICE_MAP_AUTO))
    assert ids(findings) == ["device-map-auto"]
    assert findings[0].evidence == (
        "NotImplementedError: auto not supported. Supported strategies are: balanced, cuda, cpu",)


@pytest.mark.parametrize("log", [CUDA_OOM, CUDA_OOM_OLD])
def test_cuda_out_of_memory(log: str) -> None:
    findings = diagnose(real(log))
    assert ids(findings) == ["cuda-oom"]
    assert "CUDA out of memory. Tried to allocate" in findings[0].evidence[0]


def test_cuda_oom_during_a_request_is_still_cuda_oom() -> None:
    log = ASGI_REQUEST_ERROR.replace("KeyError: 'lora-x'", CUDA_OOM.splitlines()[-1])
    assert error_ids(diagnose(real(log))) == ["cuda-oom"]


@pytest.mark.parametrize("line", [
    'docker: Error response from daemon: could not select device driver "" with capabilities: [[gpu]].',
    "nvidia-container-cli: initialization error: nvml error: driver not loaded: unknown",
    "Failed to initialize NVML: Driver/library version mismatch",
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.",
    "docker: Error response from daemon: unknown or invalid runtime name: nvidia.",
    "docker: Error response from daemon: failed to create task for container: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: error during container init: error running hook #0: error running hook: exit status 1, stdout: , stderr: Auto-detected mode as 'legacy'\nnvidia-container-cli: requirement error: unsatisfied condition: cuda>=12.8, please update your driver to a newer version, or use an earlier cuda container: unknown.",
    "RuntimeError: The NVIDIA driver on your system is too old (found version 11040). Please update your GPU driver by downloading and installing a new version from the URL: http://www.nvidia.com/Download/index.aspx",
    "RuntimeError: CUDA error: CUDA driver version is insufficient for CUDA runtime version",
])
def test_gpu_not_visible_to_containers(line: str) -> None:
    assert error_ids(diagnose(docker_t(line))) == ["nvidia-runtime"]


def test_no_nvidia_driver_traceback_is_nvidia_runtime() -> None:
    findings = diagnose(real(NO_NVIDIA_DRIVER))
    assert ids(findings) == ["nvidia-runtime"]
    assert findings[0].evidence[0].startswith("RuntimeError: Found no NVIDIA driver")


def test_cuda_initialisation_warning_is_only_a_warning() -> None:
    log = ("/opt/venv/lib/python3.11/site-packages/torch/cuda/__init__.py:174: UserWarning: CUDA "
           "initialization: Found no NVIDIA driver on your system. Please check that you have an "
           "NVIDIA GPU and installed a driver from http://www.nvidia.com/Download/index.aspx "
           "(Triggered internally at /pytorch/c10/cuda/CUDAFunctions.cpp:109.)")
    findings = diagnose(log)
    assert ids(findings) == ["nvidia-runtime"]
    assert findings[0].severity == "warning"


# --------------------------------------------------------------------------- host


@pytest.mark.parametrize("log", [
    "state=loading\nKilled",
    "/app/entrypoint.sh: line 7:     8 Killed                  python -m flux_server",
    '"State": {"Status": "exited", "Running": false, "OOMKilled": true, "ExitCode": 137}',
    "[12345.678901] Out of memory: Killed process 4321 (python) total-vm:60123456kB, anon-rss:30123456kB",
    "[12345.678] Memory cgroup out of memory: Killed process 4321 (python)",
])
def test_host_memory_kills_are_oom_killed(log: str) -> None:
    findings = diagnose(docker_t(log))
    assert error_ids(findings) == ["oom-killed"]


def test_exit_137_alone_is_only_a_warning() -> None:
    findings = diagnose("fluxdeploy-flux   Exited (137) 2 minutes ago")
    assert ids(findings) == ["oom-killed"]
    assert findings[0].severity == "warning"


def test_an_image_for_another_cpu_is_a_crash_that_says_so() -> None:
    findings = diagnose(docker_t("exec /opt/venv/bin/python: exec format error"))
    assert error_ids(findings) == ["container-crash"]
    assert "architecture" in findings[0].title


def test_the_word_killed_inside_a_sentence_is_not_oom() -> None:
    assert diagnose("INFO:     dropped queued job: killed by client disconnect") == []


@pytest.mark.parametrize("line", [
    "write /var/lib/docker/tmp/GetImageBlob3829471: no space left on device",
    "failed to register layer: write /opt/venv/lib/libtorch_cuda.so: no space left on device",
])
def test_docker_disk_full(line: str) -> None:
    assert error_ids(diagnose(line)) == ["disk-full"]


def test_download_disk_full_is_one_finding_with_both_lines() -> None:
    findings = diagnose(real(DISK_FULL))
    disk = only(findings, "disk-full")
    assert disk.severity == "error"
    assert disk.evidence[0] == "OSError: [Errno 28] No space left on device"
    assert any("Not enough free disk space" in e for e in disk.evidence)
    assert "still-loading" not in ids(findings)  # a dead download is not "still loading"


@pytest.mark.parametrize("line", [
    "ERROR:    [Errno 98] error while attempting to bind on address ('0.0.0.0', 8000): address already in use",
    "docker: Error response from daemon: driver failed programming external connectivity on endpoint fluxdeploy-flux (3f2a): Bind for 0.0.0.0:8000 failed: port is already allocated.",
    "docker: Error response from daemon: failed to set up container networking: driver failed programming external connectivity on endpoint fluxdeploy-flux: Bind for 127.0.0.1:8000 failed: port is already allocated",
])
def test_port_in_use(line: str) -> None:
    log = real("INFO:     Started server process [1]\n" + line)
    assert error_ids(diagnose(log)) == ["port-in-use"]


def test_bound_to_loopback() -> None:
    log = real(UVICORN_START.replace("0.0.0.0", "127.0.0.1"))
    findings = diagnose(log)
    assert ids(findings) == ["bound-to-loopback"]
    assert findings[0].evidence == (
        "INFO:     Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)",)


def test_bound_to_all_addresses_is_fine() -> None:
    assert diagnose(real(UVICORN_START)) == []


# --------------------------------------------------------------------------- still loading


def test_still_downloading_is_a_warning() -> None:
    log = real(UVICORN_START + "\nstate=downloading model=black-forest-labs/FLUX.1-schnell\n"
               + TQDM_FETCH.rsplit("\r", 1)[0])
    findings = diagnose(log)
    assert ids(findings) == ["still-loading"]
    assert findings[0].severity == "warning"
    assert "downloading" in findings[0].evidence[0]


def test_progress_bar_without_state_lines_is_still_loading() -> None:
    log = docker_t("Fetching 23 files:  43%|████▎     | 10/23 [01:12<01:20,  6.21s/it]")
    assert ids(diagnose(log)) == ["still-loading"]


def test_server_loading_line_is_still_loading() -> None:
    log = real(UVICORN_START + "\nINFO:     flux_server.loader: loading model=x\n"
               'INFO:     172.17.0.1:1 - "GET /ready HTTP/1.1" 503 Service Unavailable')
    assert ids(diagnose(log)) == ["still-loading"]


def test_ready_after_loading_is_not_still_loading() -> None:
    assert "still-loading" not in ids(diagnose("state=downloading\nstate=loading\nstate=ready"))


# --------------------------------------------------------------------------- crashes


def test_unknown_traceback_is_container_crash_with_its_last_exception_line() -> None:
    findings = diagnose(real(UVICORN_START + "\n" + MODULE_CRASH))
    crash = only(findings, "container-crash")
    assert crash.severity == "error"
    assert crash.evidence == ("ModuleNotFoundError: No module named 'sentencepiece'",)


def test_last_exception_of_an_unknown_chain_is_the_evidence() -> None:
    log = """\
Traceback (most recent call last):
  File "/app/a.py", line 1, in <module>
KeyError: 'transformer'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/app/a.py", line 3, in <module>
ValueError: the pipeline folder has no transformer"""
    assert only(diagnose(log), "container-crash").evidence == (
        "ValueError: the pipeline folder has no transformer",)


def test_an_unhandled_request_error_is_a_warning_not_a_dead_server() -> None:
    findings = diagnose(real(HEALTHY + "\n" + ASGI_REQUEST_ERROR))
    crash = only(findings, "container-crash")
    assert crash.severity == "warning"
    assert crash.evidence == ("KeyError: 'lora-x'",)


def test_failed_state_without_a_recognised_cause_is_container_crash() -> None:
    log = "state=loading\nERROR:    flux_server.loader: model load failed: model=x type=ValueError message=bad config"
    findings = diagnose(log)
    assert error_ids(findings) == ["container-crash"]


def test_a_traceback_cut_by_tail_still_matches_its_exception_line() -> None:
    # `docker logs --tail 3` can start in the middle of a traceback.
    log = "    pipe.to(\"cuda\")\n" + CUDA_OOM.splitlines()[-1]
    assert error_ids(diagnose(log)) == ["cuda-oom"]


# --------------------------------------------------------------------------- several problems


def test_each_problem_is_reported_errors_first_in_order_of_appearance() -> None:
    log = real("WARNING:  flux_server: CUDA initialization: Found no NVIDIA driver on your system\n"
               + UVICORN_START.replace("0.0.0.0", "127.0.0.1") + "\n" + CUDA_OOM_OLD + "\n"
               + "write /var/lib/docker/tmp/GetImageBlob1: no space left on device")
    findings = diagnose(log)
    assert error_ids(findings) == ["nvidia-runtime", "bound-to-loopback", "cuda-oom", "disk-full"]


def test_warnings_come_after_errors() -> None:
    log = "Exited (137) 1 minute ago\n" + MODULE_CRASH
    findings = diagnose(log)
    assert [f.severity for f in findings] == ["error", "warning"]
    assert ids(findings) == ["container-crash", "oom-killed"]


def test_a_restart_loop_reports_the_problem_once_with_its_repeats_as_evidence() -> None:
    findings = diagnose(real((DEVICE_MAP_AUTO + "\n") * 3))
    assert ids(findings) == ["device-map-auto"]


# --------------------------------------------------------------------------- redaction


def test_evidence_is_redacted() -> None:
    token = "hf_" + "QwErTyUiOpAsDfGhJkLzXcVbNm123456"
    log = f"""\
Traceback (most recent call last):
  File "/app/flux_server/app.py", line 20, in <module>
ValueError: invalid header value b'Bearer {token}'"""
    findings = diagnose(log)
    assert token not in str(findings)
    assert findings[0].evidence == ("ValueError: invalid header value b'Bearer ***'",)


def test_extra_secrets_and_env_tokens_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "plain-env-token-value")
    log = ("ERROR:    model load failed: type=GatedRepoError message=token plain-env-token-value "
           "and registry-password-1 refused")
    findings = diagnose(log, secrets=["registry-password-1"])
    text = str([f.to_dict() for f in findings])
    assert "plain-env-token-value" not in text and "registry-password-1" not in text
    assert findings[0].evidence == (
        "ERROR:    model load failed: type=GatedRepoError message=token *** and *** refused",)


def test_very_long_evidence_lines_are_shortened() -> None:
    findings = diagnose("RuntimeError: CUDA error: out of memory " + "x" * 5000)
    assert len(findings[0].evidence[0]) <= 400


# --------------------------------------------------------------------------- catalogue


def test_every_finding_has_catalogue_fields() -> None:
    for finding_id in FINDING_IDS:
        kind = CATALOGUE[finding_id]
        assert kind.title and kind.fix and kind.severity in ("error", "warning", "info")


def test_finding_json_shape() -> None:
    finding = diagnose(MODULE_CRASH)[0]
    assert set(finding.to_dict()) == {"id", "severity", "title", "evidence", "fix", "doc"}
    assert finding.to_dict()["doc"] == "container-crash"


# --------------------------------------------------------------------------- the bundled server
# Captured from `python -m flux_server` (server/flux_server/logs.py's log format: asctime,
# level, logger name) with FLUX_MODEL=tiny, FLUX_HOST=127.0.0.1, and FLUX.1-dev against a hub
# stand-in that answers 401 GatedRepo like huggingface.co.

SERVER_TINY = """\
2026-11-23 18:20:55,402 INFO flux_server: serving on 0.0.0.0:8000 model=tiny (tiny random-weight test pipeline)
2026-11-23 18:20:55,472 INFO uvicorn.error: Started server process [1]
2026-11-23 18:20:55,473 INFO uvicorn.error: Waiting for application startup.
2026-11-23 18:20:55,474 INFO flux_server.loader: loading model=tiny (tiny random-weight test pipeline)
2026-11-23 18:20:55,496 INFO uvicorn.error: Application startup complete.
2026-11-23 18:20:55,498 INFO uvicorn.error: Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)
2026-11-23 18:20:57,705 INFO flux_server.request: request id=bf71477d4ad5 route=/ready status=503 width=- height=- steps=- queue_wait_s=- generation_s=- duration_s=0.005
[transformers] `CLIPImageProcessor` requires torchvision (not installed); falling back to `CLIPImageProcessorPil` for backward compatibility. Install torchvision to use the default backend, or import `CLIPImageProcessorPil` directly to silence this warning.
2026-11-23 18:21:08,937 INFO flux_server.loader: memory plan: cpu dtype=fp32 quant=none (no GPU found: CPU; CPU: fp32)
2026-11-23 18:21:09,295 INFO flux_server.loader: model ready: model=tiny (tiny random-weight test pipeline) strategy=cpu dtype=fp32
2026-11-23 18:21:09,696 INFO flux_server.request: request id=8a959671fa8d route=/ready status=200 width=- height=- steps=- queue_wait_s=- generation_s=- duration_s=0.001
2026-11-23 18:21:11,561 INFO flux_server.request: request id=5fa6b4ebcaf1 route=/generate status=200 width=64 height=64 steps=2 queue_wait_s=0.000 generation_s=1.770 duration_s=1.784
2026-11-23 18:21:11,576 INFO flux_server.request: request id=14f89e7e7fce route=/generate status=422 width=- height=- steps=- queue_wait_s=- generation_s=- duration_s=0.002"""

SERVER_GATED = """\
2026-11-23 18:21:17,864 INFO flux_server: serving on 0.0.0.0:8000 model=black-forest-labs/FLUX.1-dev
2026-11-23 18:21:17,884 INFO uvicorn.error: Started server process [1]
2026-11-23 18:21:17,885 INFO flux_server.loader: loading model=black-forest-labs/FLUX.1-dev
2026-11-23 18:21:17,887 INFO uvicorn.error: Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)
2026-11-23 18:21:21,397 INFO httpx2: HTTP Request: GET https://huggingface.co/api/models/black-forest-labs/FLUX.1-dev/revision/main "HTTP/1.1 401 Unauthorized"
2026-11-23 18:21:21,398 ERROR flux_server.loader: model load failed: model=black-forest-labs/FLUX.1-dev type=GatedRepoError message=401 Client Error. (Request ID: Root=1-6745a1b2-3c4d5e6f7a8b9c0d1e2f3a4b)

Cannot access gated repo for url https://huggingface.co/api/models/black-forest-labs/FLUX.1-dev/revision/main.
Access to model black-forest-labs/FLUX.1-dev is restricted. You must have access to it and be authenticated to access it. Please log in. hint=black-forest-labs/FLUX.1-dev is a gated Hugging Face repository: accept its licence on the Hub and set HF_TOKEN (or HUGGINGFACEHUB_API_TOKEN / HUGGINGFACE_TOKEN) to a token with access (pass it with --env-file).
Traceback (most recent call last):
  File "/opt/venv/lib/python3.11/site-packages/huggingface_hub/utils/_http.py", line 866, in hf_raise_for_status
    response.raise_for_status()
httpx2.HTTPStatusError: Client error '401 Unauthorized' for url 'https://huggingface.co/api/models/black-forest-labs/FLUX.1-dev/revision/main'
For more information check: https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/401

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/app/flux_server/loader.py", line 147, in run
    self._run()
  File "/opt/venv/lib/python3.11/site-packages/huggingface_hub/utils/_http.py", line 892, in hf_raise_for_status
    raise _format(GatedRepoError, message, response, repo_type=repo_type, repo_id=repo_id) from e
huggingface_hub.errors.GatedRepoError: 401 Client Error. (Request ID: Root=1-6745a1b2-3c4d5e6f7a8b9c0d1e2f3a4b)

Cannot access gated repo for url https://huggingface.co/api/models/black-forest-labs/FLUX.1-dev/revision/main.
Access to model black-forest-labs/FLUX.1-dev is restricted. You must have access to it and be authenticated to access it. Please log in.
2026-11-23 18:21:36,942 INFO flux_server.request: request id=015c7aa70055 route=/ready status=503 width=- height=- steps=- queue_wait_s=- generation_s=- duration_s=0.002"""


def test_bundled_server_healthy_log_is_clean() -> None:
    assert diagnose(docker_t(SERVER_TINY)) == []


def test_bundled_server_still_loading() -> None:
    head = "\n".join(SERVER_TINY.splitlines()[:7])
    findings = diagnose(docker_t(head))
    assert ids(findings) == ["still-loading"]
    assert "loading model=tiny" in findings[0].evidence[0]


def test_bundled_server_gated_failure_is_hf_auth_only() -> None:
    findings = diagnose(docker_t(SERVER_GATED))
    assert ids(findings) == ["hf-auth"]
    assert findings[0].severity == "error"
    assert any(e.startswith("huggingface_hub.errors.GatedRepoError") for e in findings[0].evidence)


def test_bundled_server_bound_to_loopback() -> None:
    log = SERVER_TINY.replace("serving on 0.0.0.0", "serving on 127.0.0.1").replace(
        "http://0.0.0.0:8000", "http://127.0.0.1:8000")
    findings = diagnose(docker_t(log))
    assert ids(findings) == ["bound-to-loopback"]
    assert len(findings[0].evidence) == 2


def test_bundled_server_generation_failure_is_a_request_warning() -> None:
    log = SERVER_TINY + """
2026-11-23 18:22:00,001 ERROR flux_server.app: generation failed
Traceback (most recent call last):
  File "/app/flux_server/engine.py", line 80, in generate
    images = self.pipeline(**kwargs).images
RuntimeError: Already borrowed"""
    findings = diagnose(log)
    assert ids(findings) == ["container-crash"]
    assert findings[0].severity == "warning"


def test_bundled_server_configuration_error_is_an_error() -> None:
    log = ("2026-11-23 18:22:00,001 ERROR flux_server.app: configuration error: type=SettingsError "
           "message=FLUX_MEMORY=fast is not one of auto, gpu, balanced hint=use one of them")
    findings = diagnose(log)
    assert error_ids(findings) == ["container-crash"]


def test_a_crash_followed_by_the_restarted_process_is_still_a_crash() -> None:
    restarted = "\n".join(SERVER_TINY.splitlines()[:6])
    log = MODULE_CRASH + "\n" + restarted.replace("2026-11-23 ", "2026-11-24 ")
    findings = diagnose(docker_t(log))
    assert error_ids(findings) == ["container-crash"]
    assert only(findings, "container-crash").evidence == (
        "ModuleNotFoundError: No module named 'sentencepiece'",)


def test_a_generation_step_bar_at_the_end_is_not_still_loading() -> None:
    log = docker_t(" 50%|█████     | 2/4 [00:01<00:01,  1.90it/s]")
    assert diagnose(log) == []


def test_loading_checkpoint_shards_bar_is_still_loading() -> None:
    log = "Loading checkpoint shards:  50%|█████     | 1/2 [00:07<00:07,  7.10s/it]"
    assert ids(diagnose(log)) == ["still-loading"]
