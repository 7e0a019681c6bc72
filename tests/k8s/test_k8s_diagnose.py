"""`fluxdeploy k8s diagnose` on kubectl's own output (the kubelet's and the scheduler's
texts, kubernetes/kubernetes; see intelligensi_deploy/k8s/diagnose.py), plus the server's log
through the same diagnosis as `fluxdeploy diagnose`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from intelligensi_deploy.k8s.diagnose import k8s_diagnose

IMAGE = "ghcr.io/acme/flux-server:1.0"
HEAD = """Name:             fluxdeploy-dev-7c9d8b6f5d-x2kqp
Namespace:        default
Containers:
  server:
    Image:          {image}
"""
PULL_DENIED = HEAD + f"""    State:          Waiting
      Reason:       ImagePullBackOff
Events:
  Type     Reason     Age                From               Message
  ----     ------     ----               ----               -------
  Normal   Pulling    40s (x3 over 2m)   kubelet            Pulling image "{IMAGE}"
  Warning  Failed     39s (x3 over 2m)   kubelet            Failed to pull image "{IMAGE}": failed to pull and unpack image "{IMAGE}": failed to resolve reference "{IMAGE}": failed to authorize: failed to fetch anonymous token: unexpected status from GET request to https://ghcr.io/token?scope=repository%3Aacme%2Fflux-server%3Apull&service=ghcr.io: 401 Unauthorized
  Warning  Failed     39s (x3 over 2m)   kubelet            Error: ErrImagePull
  Normal   BackOff    12s (x4 over 2m)   kubelet            Back-off pulling image "{IMAGE}"
  Warning  Failed     12s (x4 over 2m)   kubelet            Error: ImagePullBackOff
"""
PULL_MISSING = HEAD + f"""Events:
  Warning  Failed     5s    kubelet  Failed to pull image "{IMAGE}": rpc error: code = NotFound desc = failed to pull and unpack image "{IMAGE}": failed to resolve reference "{IMAGE}": {IMAGE}: not found
  Normal   BackOff    2s    kubelet  Back-off pulling image "{IMAGE}"
"""
NO_GPU = HEAD + """Events:
  Warning  FailedScheduling  2m (x3 over 7m)  default-scheduler  0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.
"""
OOM = HEAD + """    State:          Running
    Last State:     Terminated
      Reason:       OOMKilled
      Exit Code:    137
    Restart Count:  2
"""
STARTUP = HEAD + """Events:
  Warning  Unhealthy  5s (x240 over 40m)  kubelet  Startup probe failed: HTTP probe failed with statuscode: 503
  Normal   Killing    5s                  kubelet  Container server failed startup probe, will be restarted
"""
NO_SECRET = HEAD + """    State:          Waiting
      Reason:       CreateContainerConfigError
Events:
  Warning  Failed     3s (x3 over 20s)  kubelet  Error: secret "fluxdeploy-dev-hf-token" not found
"""


def _ids(text: str) -> list[str]:
    return [f.id for f in k8s_diagnose(text.format(image=IMAGE))]


def test_registry_refusal_is_told_apart_from_hugging_face() -> None:
    (finding, *rest) = k8s_diagnose(PULL_DENIED.format(image=IMAGE))
    assert finding.id == "k8s-image-pull-auth" and finding.severity == "error"
    assert "not Hugging Face" in finding.fix and "imagePullSecrets" in finding.fix
    assert "401 Unauthorized" in finding.evidence[0]
    assert "k8s-image-pull-backoff" not in [f.id for f in rest]  # the cause, not the symptom


def test_a_tag_never_pushed_names_the_push_command() -> None:
    (finding, *_) = k8s_diagnose(PULL_MISSING.format(image=IMAGE))
    assert finding.id == "k8s-image-not-found"
    assert f"fluxdeploy image build --push {IMAGE}" in finding.fix


def test_back_off_alone_is_the_generic_pull_finding() -> None:
    text = f'  Normal   BackOff    2s    kubelet  Back-off pulling image "{IMAGE}"\n'
    assert _ids(text) == ["k8s-image-pull-backoff"]


@pytest.mark.parametrize(("text", "finding_id", "words"), [
    (NO_GPU, "k8s-insufficient-gpu", "nvidia.com/gpu"),
    (OOM, "k8s-oom-killed", "not the GPU"),
    (STARTUP, "k8s-startup-probe-killed", "ready_timeout"),
    (NO_SECRET, "k8s-secret-not-found", "fluxdeploy k8s secret"),
])
def test_kubernetes_only_findings(text: str, finding_id: str, words: str) -> None:
    findings = k8s_diagnose(text.format(image=IMAGE))
    found = {f.id: f for f in findings}
    assert found[finding_id].severity == "error"
    assert words in found[finding_id].title + found[finding_id].fix


def test_still_loading_alone_is_not_an_error() -> None:
    text = "  Warning  Unhealthy  5s (x3 over 30s)  kubelet  Startup probe failed: HTTP probe " \
           "failed with statuscode: 503\n"
    assert [(f.id, f.severity) for f in k8s_diagnose(text)] == [("k8s-still-loading", "info")]


def test_the_servers_log_goes_through_the_same_diagnosis() -> None:
    log = ("huggingface_hub.errors.GatedRepoError: 401 Client Error. Cannot access gated repo "
           "for url https://huggingface.co/black-forest-labs/FLUX.1-dev/resolve/main/"
           "model_index.json.\n")
    ids = _ids(NO_SECRET + log)
    assert ids[0] == "k8s-secret-not-found" and len(ids) >= 2  # plus the log's own finding


def test_command_reads_stdin_and_exits_1_on_an_error() -> None:
    run = subprocess.run([sys.executable, "-m", "intelligensi_deploy", "k8s", "diagnose", "-",
                          "--json"], input=NO_GPU.format(image=IMAGE), capture_output=True,
                         text=True, check=False, timeout=60)
    assert run.returncode == 1, run.stderr
    ids = [f["id"] for f in json.loads(run.stdout)["findings"]]
    assert ids == ["k8s-insufficient-gpu"]
    clean = subprocess.run([sys.executable, "-m", "intelligensi_deploy", "k8s", "diagnose", "-"],
                           input="", capture_output=True, text=True, check=False, timeout=60)
    assert clean.returncode == 0
