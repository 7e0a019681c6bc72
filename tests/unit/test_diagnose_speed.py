"""diagnose() on the speed options' log lines, and on logs of a load that has not finished
(issue 12 point 6): download bars only, a loading bar with no state line, a warm-up.

The server lines were captured from the bundled server (tiny pipeline, FLUX_COMPILE=regional,
FLUX_WARM_SIZES=64x64,80x64; and FLUX_FP8=on on a detected A100); torch's recompile warning
from torch 2.13 with a small recompile_limit; the download bars are huggingface_hub's tqdm
bars (unit B, SI prefixes) as `docker logs` shows them after the last carriage return.
"""

from __future__ import annotations

import pytest

from intelligensi_deploy.diagnosis.diagnose import diagnose, has_errors
from intelligensi_deploy.diagnosis.loading import file_bars, server_state

COMPILING = """\
2026-12-01 18:24:43,046 INFO flux_server.loader: loading model=tiny (tiny random-weight test pipeline)
2026-12-01 18:24:50,382 INFO flux_server.loader: memory plan: cpu dtype=fp32 quant=none (no GPU found: CPU; CPU: fp32)
2026-12-01 18:24:50,443 INFO flux_server.speed: speed plan: compile=regional fp8=off fuse_qkv=off cache=off warm_sizes=64x64,80x64 (FLUX_COMPILE=regional as requested; fp8 off: no GPU; fused QKV off: no GPU; step cache off: tiny's few steps leave little to cache; warm sizes as requested)
2026-12-01 18:24:50,444 INFO flux_server.loader: warming 2 sizes: 64x64,80x64 (compile=regional: each new size compiles first, minutes on a GPU; PLAYBOOK.md#compile-slow-start)
2026-12-01 18:25:51,151 INFO flux_server.loader: warming 1/2 sizes: 64x64 in 60.7s (2 graphs compiled)"""
READY = """
2026-12-01 18:26:37,560 INFO flux_server.loader: warming 2/2 sizes: 80x64 in 46.4s (2 graphs compiled)
2026-12-01 18:26:37,561 INFO flux_server.loader: model ready: model=tiny (tiny random-weight test pipeline) strategy=cpu dtype=fp32"""

FP8_ON_A100 = """\
2026-12-01 18:26:37,632 INFO flux_server.loader: loading model=black-forest-labs/FLUX.1-dev
2026-12-01 18:26:37,634 ERROR flux_server.loader: model load failed: model=black-forest-labs/FLUX.1-dev type=PlanError message=FLUX_FP8=on needs compute capability >= 8.9 (found [(8, 0)]) hint=fp8 runs on L4/L40S/H100/H200; on A10/A100 set FLUX_FP8=auto or off (see PLAYBOOK.md#fp8-unsupported)
Traceback (most recent call last):
  File "/app/flux_server/loader.py", line 168, in run
    self._run()
  File "/app/flux_server/speed.py", line 124, in _fp8
    raise PlanError(
flux_server.memory.PlanError: FLUX_FP8=on needs compute capability >= 8.9 (found [(8, 0)])"""

RECOMPILE_LIMIT = """\
W1201 18:26:43.293000 11229 torch/_dynamo/convert_frame.py:1994] [2/2] torch._dynamo hit config.recompile_limit (8)
W1201 18:26:43.293000 11229 torch/_dynamo/convert_frame.py:1994] [2/2]    function: 'forward' (/app/.venv/lib/python3.11/site-packages/diffusers/models/transformers/transformer_flux.py:412)
W1201 18:26:43.293000 11229 torch/_dynamo/convert_frame.py:1994] [2/2]    last reason: 2/1: tensor 'hidden_states' size mismatch at index 1. expected 4096, actual 3600
W1201 18:26:43.293000 11229 torch/_dynamo/convert_frame.py:1994] [2/2] To log all recompilation reasons, use TORCH_LOGS="recompiles"."""

SERVER_STORM = ("2026-12-01 19:02:11,020 WARNING flux_server.service: recompile storm: 6 graphs "
                "compiled since ready, last for 1152x896; add the sizes clients use to "
                "FLUX_WARM_SIZES (PLAYBOOK.md#recompile-storm)")

HF_BARS = [
    "model-00001-of-00003.safetensors:   8%|▊         | 797M/9.98G [00:25<04:52, 31.4MB/s]",
    "model-00002-of-00003.safetensors:   3%|▎         | 301M/9.95G [00:25<13:20, 12.1MB/s]",
    "diffusion_pytorch_model.safetensors: 100%|██████████| 168M/168M [00:05<00:00, 30.2MB/s]",
]


def ids(findings) -> list[str]:
    return [f.id for f in findings]


def test_warm_up_with_compile_is_still_loading_with_a_compile_note() -> None:
    findings = diagnose(COMPILING)
    assert ids(findings) == ["still-loading", "compile-slow-start"]
    assert "warming 1/2 sizes: 64x64 in 60.7s" in findings[0].evidence[0]
    assert findings[1].severity == "info"
    assert not has_errors(findings)


def test_compile_note_is_gone_once_ready() -> None:
    assert diagnose(COMPILING + READY) == []


def test_fp8_on_an_a100_is_fp8_unsupported_not_a_crash() -> None:
    findings = diagnose(FP8_ON_A100)
    assert ids(findings) == ["fp8-unsupported"]
    assert findings[0].severity == "error"
    assert "FLUX_FP8=on needs compute capability >= 8.9" in findings[0].evidence[0]
    assert "speed.fp8: auto" in findings[0].fix


@pytest.mark.parametrize("line", [
    "AssertionError: Float8 dynamic activation quantization is only supported on CUDA>=8.9 and MI300+",
    "AssertionError: Float8 dynamic quantization requires CUDA compute capability ≥8.9 or MI300+ or XPU.",
    "PlanError: FLUX_QUANT=fp8 needs compute capability >= 8.9 (found [(8, 6)])",
])
def test_fp8_messages_from_torchao_and_the_server(line: str) -> None:
    assert "fp8-unsupported" in ids(diagnose(line))


def test_torch_recompile_limit_is_a_recompile_storm() -> None:
    findings = diagnose(RECOMPILE_LIMIT)
    assert ids(findings) == ["recompile-storm"]
    assert findings[0].severity == "warning"
    assert "hit config.recompile_limit (8)" in findings[0].evidence[0]


def test_server_storm_warning_is_a_recompile_storm() -> None:
    assert ids(diagnose(SERVER_STORM)) == ["recompile-storm"]


def test_a_few_cold_shapes_are_no_storm() -> None:
    line = ("2026-12-01 19:01:00,100 INFO flux_server.service: compiled 2 graphs for 1152x896 "
            "(a cold shape)")
    assert diagnose(line) == []


# --------------------------------------------------------------------------- unfinished loads


def test_download_bars_only_are_still_loading_with_bytes_and_rate() -> None:
    log = "\n".join("\r".join([bar.replace("797M", "10.0M"), bar]) for bar in HF_BARS[:2])
    findings = diagnose(log)
    assert ids(findings) == ["still-loading"]
    summary = findings[0].evidence[0]
    assert summary == ("downloading 2 files: 1.10 GB of 19.93 GB seen (6%), 2 unfinished, "
                       "last rate 12.1MB/s")
    assert findings[0].evidence[1].startswith("model-00002-of-00003.safetensors:   3%")
    assert "do not redeploy" in findings[0].fix.lower()


def test_file_bars_keep_each_files_last_state() -> None:
    plain = list(enumerate([HF_BARS[0].replace("797M", "100M"), HF_BARS[0], HF_BARS[2]]))
    bars = file_bars(plain)
    assert list(bars) == ["model-00001-of-00003.safetensors",
                          "diffusion_pytorch_model.safetensors"]
    first = bars["model-00001-of-00003.safetensors"]
    assert (first.percent, first.done_bytes, first.total_bytes, first.rate) == (
        8, 797e6, 9.98e9, "31.4MB/s")


def test_downloading_state_line_quotes_the_bars_too() -> None:
    log = ("2026-12-01 18:00:00,000 INFO flux_server.loader: downloading model="
           "black-forest-labs/FLUX.1-dev\n" + "\n".join(HF_BARS))
    findings = diagnose(log)
    assert ids(findings) == ["still-loading"]
    assert "downloading model=" in findings[0].evidence[0]
    assert findings[0].evidence[1].startswith("downloading 3 files: 1.27 GB of 20.10 GB")


def test_finished_bars_then_the_end_of_the_log_is_still_loading() -> None:
    assert ids(diagnose(HF_BARS[2])) == ["still-loading"]


def test_loading_bar_without_a_state_line_is_still_loading() -> None:
    log = "Loading pipeline components...:  43%|████▎     | 3/7 [00:04<00:05,  1.31s/it]"
    assert ids(diagnose(log)) == ["still-loading"]


def test_download_bars_then_ready_are_fine() -> None:
    log = "\n".join(HF_BARS) + "\nINFO flux_server.loader: model ready: model=x strategy=gpu"
    assert diagnose(log) == []


def test_download_bars_then_a_disk_error_is_the_error_alone() -> None:
    log = "\n".join(HF_BARS[:2]) + "\nOSError: [Errno 28] No space left on device"
    assert ids(diagnose(log)) == ["disk-full"]


@pytest.mark.parametrize("line,state", [
    ("INFO flux_server.loader: warming 2 sizes: 1024x1024,1024x576", "warming"),
    ("INFO flux_server.loader: warming 1/3 sizes: 1024x1024 in 61.2s (57 graphs compiled)",
     "warming"),
    ("INFO flux_server.speed: speed plan: compile=regional fp8=on", "loading"),
])
def test_speed_lines_are_load_states(line: str, state: str) -> None:
    assert server_state(line) == state
