"""What doctor and diagnose can find: stable ids, each with a title, a fix and a PLAYBOOK section.

Ids never change once released (users and scripts grep for them); each has a section of the
same name in PLAYBOOK.md, so ``doc`` is the id itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]
SEVERITY_RANK: dict[str, int] = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Finding:
    """One problem seen in the evidence: `evidence` holds the (redacted) lines that show it."""

    id: str
    severity: Severity
    title: str
    evidence: tuple[str, ...] = ()
    fix: str = ""
    doc: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity,
            "title": self.title,
            "evidence": list(self.evidence),
            "fix": self.fix,
            "doc": self.doc,
        }


@dataclass(frozen=True)
class FindingKind:
    """The catalogue entry behind a finding id."""

    id: str
    severity: Severity
    title: str
    fix: str

    def finding(self, evidence: list[str] | tuple[str, ...] = (), *,
                severity: Severity | None = None, title: str | None = None,
                fix: str | None = None) -> Finding:
        return Finding(self.id, severity or self.severity, title or self.title,
                       tuple(evidence), fix or self.fix, self.id)


TUNNEL_FIX = "Use `fluxdeploy tunnel` now (it needs no open port)."

CATALOGUE: dict[str, FindingKind] = {k.id: k for k in (
    FindingKind(
        "ghcr-auth", "error", "The container registry refused the login or the pull",
        "Check GHCR_TOKEN (a GitHub token with read:packages) and GHCR_USERNAME, or make the "
        "package public; then `fluxdeploy up` again. This is not a Hugging Face problem.",
    ),
    FindingKind(
        "image-not-found", "error", "The image or tag does not exist in the registry",
        "Check the `image:` of the preset (name and tag); push the image or pick an existing tag.",
    ),
    FindingKind(
        "hf-auth", "error", "Hugging Face refused the model download (gated, private or bad token)",
        "export HF_TOKEN=<a token with read access>, accept the model's licence on its "
        "huggingface.co page, then `fluxdeploy up` again.",
    ),
    FindingKind(
        "hf-unreachable", "error", "The Hugging Face Hub could not be reached and the model is "
        "not in the cache",
        "Check the VM's outbound network and DNS (or HF_ENDPOINT); unset HF_HUB_OFFLINE unless "
        "the cache already holds the model.",
    ),
    FindingKind(
        "device-map-auto", "error", "diffusers does not accept device_map=\"auto\" for pipelines",
        "Use memory `balanced` (several GPUs), `gpu`, or `model-offload` in the preset; remove "
        "FLUX_DEVICE_MAP=auto.",
    ),
    FindingKind(
        "cuda-oom", "error", "The GPU ran out of memory (CUDA out of memory)",
        "Use a preset that fits the GPU: quantize (quant: nf4 or int8) and/or memory: "
        "model-offload, lower width/height/num_images, or a larger GPU.",
    ),
    FindingKind(
        "oom-killed", "error", "The kernel killed the server: the host ran out of RAM (exit 137)",
        "Use a machine with more RAM, or a lighter memory strategy (avoid cpu/sequential "
        "offload of bf16 weights); check `docker inspect` .State.OOMKilled.",
    ),
    FindingKind(
        "nvidia-runtime", "error", "Containers cannot see the GPU (NVIDIA driver or runtime)",
        "On the VM: `nvidia-smi` must work and the NVIDIA Container Toolkit must be installed "
        "(`sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker`).",
    ),
    FindingKind(
        "gpu-not-visible", "error", "The deployment asked for a GPU and the server sees none "
        "(it refused to run FLUX on the CPU)",
        "The evidence names the cause. A CPU-only torch in the image: rebuild it with the "
        "CUDA torch (server/Dockerfile's default TORCH_SPEC; on arm64 also TORCH_INDEX_URL="
        "https://download.pytorch.org/whl/cu128). No NVIDIA device in the container: keep "
        "`gpus: true` and make `docker run --rm --gpus all IMAGE nvidia-smi` work on the host. "
        "CUDA_VISIBLE_DEVICES hides the GPUs: unset it. No GPU on purpose: a preset with "
        "`gpus: false`.",
    ),
    FindingKind(
        "disk-full", "error", "No space left on device",
        "Free disk on the VM (`docker system prune`, old HF cache) or mount a Lambda file system "
        "for the Hugging Face cache.",
    ),
    FindingKind(
        "port-in-use", "error", "The port is already taken",
        "Stop what holds the port (`docker ps`, `ss -ltnp`) or choose another `port:` in the "
        "preset.",
    ),
    FindingKind(
        "fp8-unsupported", "error", "fp8 was forced on a GPU without fp8 support (compute "
        "capability below 8.9)",
        "Set `speed.fp8: auto` (or off) in the preset, or FLUX_FP8=auto / FLUX_QUANT=none; fp8 "
        "needs an L4, L40S, H100 or H200. Then `fluxdeploy up` again.",
    ),
    FindingKind(
        "recompile-storm", "warning", "torch.compile keeps recompiling for new request shapes",
        "Add the sizes clients send to `speed.warm_sizes` (FLUX_WARM_SIZES), or set "
        "`speed.compile: off`; read the shapes in `fluxdeploy logs` (cold_shape=true lines).",
    ),
    FindingKind(
        "compile-slow-start", "info", "The server compiles the transformer while warming up "
        "(torch.compile): start-up takes minutes",
        "Expected: wait for /ready (watch `fluxdeploy status`: warming i/n sizes). To start "
        "faster, warm fewer sizes or set `speed.compile: off`.",
    ),
    FindingKind(
        "still-loading", "warning", "The model is still downloading or loading",
        "Do not redeploy: a restart starts the download over. Wait and watch `fluxdeploy status`.",
    ),
    FindingKind(
        "bound-to-loopback", "error", "The server listens on 127.0.0.1 inside the container",
        "Unset FLUX_HOST (the server must bind 0.0.0.0 inside the container). " + TUNNEL_FIX,
    ),
    FindingKind(
        "firewall-closed", "error", "The port is closed to the outside",
        "Add a Lambda firewall rule for the port (exposure: public does it) or use "
        "`fluxdeploy tunnel`.",
    ),
    FindingKind(
        "image-build-failed", "error", "The bundled server image did not build on the host",
        "Read the last lines of the build above (`fluxdeploy doctor` shows them); fix the "
        "cause, then `fluxdeploy up` again (finished layers are reused).",
    ),
    FindingKind(
        "replica-lost", "warning", "A replica (or its node) went away while serving requests",
        "The endpoint retried each of those requests once on another replica. `fluxdeploy "
        "status` shows the nodes; `fluxdeploy doctor` names a lost node (node-not-joined).",
    ),
    FindingKind(
        "open-endpoint", "error", "The public endpoint answers without an API key: anyone "
        "who finds it can drive the GPU and read the prompts",
        "Redeploy with `fluxdeploy up` (exposure: public turns API keys on; a container "
        "started by hand without FLUX_API_KEYS_FILE and the secrets volume has none).",
    ),
    FindingKind(
        "key-refused", "error", "The server refuses the API key this machine holds",
        "`fluxdeploy key rotate` gives the server and this machine one new key (clients "
        "holding the old one get 401 from then on).",
    ),
    FindingKind(
        "cert-changed", "error", "The server presents a TLS certificate other than the "
        "pinned one",
        "Do not send the API key or prompts there until you know why. If the certificate was "
        "replaced on purpose, `fluxdeploy up --force` makes a new one and pins it.",
    ),
    FindingKind(
        "cert-expiring", "warning", "The endpoint's TLS certificate expires within 14 days",
        "`fluxdeploy up --force` makes a new certificate for a year and pins it (clients "
        "that trust the old one need the new `fluxdeploy cert`).",
    ),
    FindingKind(
        "unauthorized-storm", "info", "Many requests with no key or a wrong one from one "
        "address",
        "Someone is trying keys, or a client still holds an old key after `fluxdeploy key "
        "rotate`. Nothing to do if the key is safe; narrow `public_cidr` in the preset to the "
        "addresses that should reach the endpoint, or rotate the key if it may have leaked.",
    ),
    FindingKind(
        "cache-corrupt", "error", "A model file in the HF cache is broken (truncated, an "
        "interrupted download or a Git LFS pointer)",
        "With the Hub reachable, `fluxdeploy up` again: the server checks every safetensors "
        "file after the download and fetches a broken one again. Offline, or when it comes "
        "back broken: delete the files named above (or the model's folder under HF_HOME, "
        "hub/models--ORG--NAME), then `fluxdeploy up`. A local model folder holding LFS "
        "pointers: `git lfs pull` in it.",
    ),
    FindingKind(
        "container-crash", "error", "The server crashed with an unrecognised error",
        "Read the traceback with `fluxdeploy logs`; the last exception line is shown above.",
    ),
)}

FINDING_IDS: tuple[str, ...] = tuple(CATALOGUE)


def make_finding(finding_id: str, evidence: list[str] | tuple[str, ...] = (), **overrides: Any
                 ) -> Finding:
    """A Finding of catalogue kind `finding_id` (KeyError for an unknown id)."""
    return CATALOGUE[finding_id].finding(evidence, **overrides)


def merge_by_id(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per id: the most severe one's fix, every distinct title (most severe first)
    and the evidence of all, first seen first: two replicas failing alike, or two nodes lost,
    are one finding naming both."""
    merged: dict[str, Finding] = {}
    for f in findings:
        seen = merged.get(f.id)
        if seen is None:
            merged[f.id] = f
            continue
        lead, other = (f, seen) if SEVERITY_RANK[f.severity] < SEVERITY_RANK[seen.severity] \
            else (seen, f)
        evidence = dedupe([*lead.evidence, *other.evidence])[:6]
        merged[f.id] = Finding(lead.id, lead.severity, _titles(lead.title, other.title),
                               tuple(evidence), lead.fix, lead.doc)
    return list(merged.values())


def _titles(lead: str, other: str) -> str:
    """Both titles when they differ (two nodes lost: both named), the lead's first."""
    return lead if other in lead.split("; ") else f"{lead}; {other}"


def dedupe(lines: Iterable[str]) -> list[str]:
    """The non-empty lines, each once, in first-seen order."""
    return list(dict.fromkeys(line for line in lines if line))
