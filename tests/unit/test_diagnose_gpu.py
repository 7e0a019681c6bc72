"""diagnose() on the server's start-up CUDA line (server/flux_server/gpu_check.py).

The excerpts are the server's own log lines, copied from runs of `python -m flux_server`
(FLUX_MODEL=tiny, with and without FLUX_REQUIRE_GPU=1) on the CPU torch build; the variants
with a CUDA torch use the reasons gpu_check words for them.
"""

from __future__ import annotations

import pytest

from intelligensi_deploy.diagnosis.diagnose import diagnose, has_errors

HEAD = """\
2026-12-01 18:19:21,074 INFO flux_server: serving on 0.0.0.0:8000 model=tiny (tiny random-weight test pipeline)
2026-12-01 18:19:21,089 INFO uvicorn.error: Started server process [7]
2026-12-01 18:19:21,091 INFO flux_server.loader: loading model=tiny (tiny random-weight test pipeline)
2026-12-01 18:19:21,096 INFO uvicorn.error: Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)
"""

REQUIRED_CPU_TORCH = HEAD + """\
2026-12-01 18:19:23,144 ERROR flux_server.loader: cuda: not available: this image's torch 2.13.0+cpu is a CPU-only build
2026-12-01 18:19:23,144 ERROR flux_server.loader: model load failed: model=tiny type=GpuNotVisible message=the deployment requires a GPU (FLUX_REQUIRE_GPU=1) but CUDA sees none: this image's torch 2.13.0+cpu is a CPU-only build hint=rebuild the image with the CUDA build of torch: server/Dockerfile's default TORCH_SPEC on amd64; on arm64 (GH200) add --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
Traceback (most recent call last):
  File "/opt/venv/lib/python3.11/site-packages/flux_server/loader.py", line 165, in run
    self._run()
  File "/opt/venv/lib/python3.11/site-packages/flux_server/loader.py", line 180, in _run
    self.gpus = self._check_gpus()
                ^^^^^^^^^^^^^^^^^^
  File "/opt/venv/lib/python3.11/site-packages/flux_server/gpu_check.py", line 103, in check_required
    raise GpuNotVisible(f"the deployment {REQUIRED_LINE}: {reason}", fix)
flux_server.gpu_check.GpuNotVisible: the deployment requires a GPU (FLUX_REQUIRE_GPU=1) but CUDA sees none: this image's torch 2.13.0+cpu is a CPU-only build
2026-12-01 18:19:40,396 INFO flux_server.request: request id=497520f024c8 route=/ready status=503 width=- height=- steps=- queue_wait_s=- generation_s=- duration_s=0.009
"""

NOT_REQUIRED = HEAD + """\
2026-12-01 18:21:14,754 INFO flux_server.loader: cuda: not available: this image's torch 2.13.0+cpu is a CPU-only build; the model runs on the CPU (FLUX_REQUIRE_GPU is not set)
2026-12-01 18:21:15,901 INFO flux_server.loader: memory plan: cpu dtype=fp32 quant=none (no GPU found: CPU; CPU: fp32)
2026-12-01 18:21:16,020 INFO flux_server.loader: model ready: model=tiny (tiny random-weight test pipeline) strategy=cpu dtype=fp32
"""

AVAILABLE = HEAD + """\
2026-12-01 18:19:23,144 INFO flux_server.loader: cuda: available (torch 2.13.0+cu128, CUDA 12.8), 1 GPU: #0 NVIDIA A10 (22.0 GiB, compute capability 8.6)
2026-12-01 18:19:40,020 INFO flux_server.loader: model ready: model=black-forest-labs/FLUX.1-schnell strategy=model-offload dtype=bf16
"""


def _required(reason: str) -> str:
    return HEAD + (
        f"2026-12-01 18:19:23,144 ERROR flux_server.loader: cuda: not available (torch "
        f"2.13.0+cu128, CUDA 12.8): {reason}\n"
        "2026-12-01 18:19:23,144 ERROR flux_server.loader: model load failed: model=tiny "
        "type=GpuNotVisible message=the deployment requires a GPU (FLUX_REQUIRE_GPU=1) but "
        f"CUDA sees none: {reason} hint=...\n")


def test_required_gpu_on_a_cpu_torch_is_gpu_not_visible_with_the_reason() -> None:
    findings = diagnose(REQUIRED_CPU_TORCH)
    assert [f.id for f in findings] == ["gpu-not-visible"]
    finding = findings[0]
    assert finding.severity == "error" and finding.doc == "gpu-not-visible"
    assert any("CPU-only build" in line for line in finding.evidence), finding.evidence
    assert "TORCH_SPEC" in finding.fix and "gpus: false" in finding.fix


def test_started_without_gpus_is_gpu_not_visible() -> None:
    reason = ("the container has no NVIDIA device (/dev/nvidia* absent): it was started "
              "without --gpus")
    findings = diagnose(_required(reason))
    assert [f.id for f in findings] == ["gpu-not-visible"]
    assert any("without --gpus" in line for line in findings[0].evidence)


@pytest.mark.parametrize("torch_says", [
    ("CUDA initialization: Found no NVIDIA driver on your system. Please check that you have an "
    "NVIDIA GPU and installed a driver from http://www.nvidia.com/Download/index.aspx"),
    ("CUDA initialization: The NVIDIA driver on your system is too old (found version 11040). "
    "Please update your GPU driver"),
])
def test_a_driver_error_quoted_in_the_reason_is_nvidia_runtime(torch_says: str) -> None:
    findings = diagnose(_required(f"CUDA could not start: {torch_says}"))
    assert [f.id for f in findings if f.severity == "error"] == ["nvidia-runtime"]


@pytest.mark.parametrize("log", [NOT_REQUIRED, AVAILABLE], ids=["cpu-on-purpose", "available"])
def test_no_finding_when_no_gpu_was_required_or_one_is_there(log: str) -> None:
    findings = diagnose(log)
    assert not has_errors(findings), findings
    assert "gpu-not-visible" not in [f.id for f in findings]


def test_the_ready_error_doctor_reads_is_recognised_too() -> None:
    """doctor's /ready check diagnoses "type: message" of a failed /ready."""
    reason = ("GpuNotVisible: the deployment requires a GPU (FLUX_REQUIRE_GPU=1) but CUDA sees "
              "none: this image's torch 2.13.0+cpu is a CPU-only build")
    assert [f.id for f in diagnose(reason)] == ["gpu-not-visible"]
