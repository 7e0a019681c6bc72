"""`fluxdeploy k8s diagnose`: pasted `kubectl describe pod` and `kubectl logs` text in,
findings out. Pure. The server's log goes through the same diagnosis as `fluxdeploy
diagnose`; Kubernetes' own words add the findings only a cluster has.

The patterns follow the texts Kubernetes prints (kubernetes/kubernetes): the kubelet's
`Failed to pull image %q: %v` and `Back-off pulling image %q` (pkg/kubelet/images), its
`%s probe failed: %s` with `HTTP probe failed with statuscode: %d` (pkg/kubelet/prober,
pkg/probe/http) and `Container %s failed %s probe, will be restarted`
(pkg/kubelet/kuberuntime), the scheduler's `0/%v nodes are available: ... Insufficient %v`
(pkg/scheduler), a container state's `OOMKilled`, and `secret %q not found`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from intelligensi_deploy.diagnosis.diagnose import clean_lines, diagnose
from intelligensi_deploy.diagnosis.findings import Finding, Severity, merge_by_id
from intelligensi_deploy.redact import redact

DOCS = "docs/kubernetes.md"
_PULL_FAILED = re.compile(r'Failed to pull image "(?P<image>[^"]+)": (?P<why>.*)')
_AUTH = re.compile(r"unauthorized|denied|authoriz|authentication required|\b40[13]\b", re.IGNORECASE)
_MISSING = re.compile(r"not found|manifest unknown|NotFound", re.IGNORECASE)


def _pull(match: re.Match[str]) -> tuple[str, Severity, str, str] | None:
    image, why = match["image"], match["why"]
    if _AUTH.search(why):
        return ("k8s-image-pull-auth", "error",
                f"The registry refused to let the cluster pull {image}",
                ("This is the image registry, not Hugging Face (HF_TOKEN plays no part in a "
                "pull). Make the package public, or give the namespace a pull secret: "
                "`docker login ghcr.io -u USER --password-stdin` (token on stdin), then "
                "`kubectl create secret generic ghcr-pull --type=kubernetes.io/dockerconfigjson "
                "--from-file=.dockerconfigjson=$HOME/.docker/config.json` and add it to the "
                "ServiceAccount's imagePullSecrets (`kubectl patch serviceaccount default -p "
                "'{\"imagePullSecrets\": [{\"name\": \"ghcr-pull\"}]}'`)."))
    if _MISSING.search(why):
        return ("k8s-image-not-found", "error", f"The image {image} does not exist",
                (f"Push it first: `fluxdeploy image build --push {image}`, or render with the "
                "tag you pushed (`fluxdeploy k8s render --image ...`)."))
    return None


def _rule(pattern: str, finding_id: str, severity: Severity, title: str,
          fix: str) -> tuple[re.Pattern[str], Callable[[re.Match[str]],
                                                       tuple[str, Severity, str, str] | None]]:
    return re.compile(pattern), lambda m: (finding_id, severity, title.format(**m.groupdict()),
                                           fix.format(**m.groupdict()))


RULES = [
    (_PULL_FAILED, _pull),
    _rule(r'Back-off pulling image "(?P<image>[^"]+)"|\bImagePullBackOff\b|\bErrImagePull\b',
          "k8s-image-pull-backoff", "error", "The cluster cannot pull the server's image",
          "Read the `Failed to pull image` event above it (`kubectl describe pod`): a "
          "registry that refuses (a pull secret), or a tag that was never pushed."),
    _rule(r"\d+/\d+ nodes are available:.*Insufficient (?P<res>[\w.-]+/[\w.-]*gpu)\b",
          "k8s-insufficient-gpu", "error", "No node has a free {res}",
          "Check that GPU nodes advertise {res} (`kubectl describe nodes | grep {res}`; the "
          "device plugin must run there) and that the preset's kubernetes.gpu_resource, "
          "node_selector and tolerations match them; or add GPU nodes."),
    _rule(r"\d+/\d+ nodes are available:.*Insufficient memory", "k8s-insufficient-memory",
          "error", "No node has the host memory the pod requests",
          "The request follows the memory plan (the pipeline passes through host memory "
          "while it loads): use nodes with more memory, or lower it in the rendered "
          "Deployment at your own risk (an OOMKilled pod follows)."),
    _rule(r"Reason:\s+OOMKilled|\bOOMKilled\b", "k8s-oom-killed", "error",
          "The container ran out of host memory (OOMKilled: the memory limit, not the GPU)",
          "Raise the memory limit (and request) in the rendered Deployment, or use a smaller "
          "dtype; a CUDA out-of-memory is a different finding, in the server's log."),
    _rule(r"Container (?P<name>\S+) failed startup probe, will be restarted",
          "k8s-startup-probe-killed", "error",
          "Kubernetes restarted {name} while the model may still have been loading",
          "Raise the preset's ready_timeout (the startupProbe's failureThreshold covers it) "
          "and render again; `kubectl logs` shows how far the load got."),
    _rule(r"Startup probe failed: HTTP probe failed with statuscode: 503",
          "k8s-still-loading", "info", "The server is still loading (its /ready answers 503)",
          "Wait: the startupProbe allows the preset's ready_timeout for the first load."),
    _rule(r'secret "(?P<secret>[^"]+)" not found', "k8s-secret-not-found", "error",
          "The Secret {secret} does not exist in the pod's namespace",
          "Create it: `fluxdeploy k8s secret --preset P` prints the kubectl line, which "
          "reads the value from your environment."),
    _rule(r"Back-off restarting failed container (?P<name>\S+)", "k8s-crash-loop",
          "warning", "The container {name} keeps crashing (CrashLoopBackOff)",
          "Read its last run: `kubectl logs POD -c {name} --previous` (and paste it here)."),
]


def k8s_diagnose(text: str) -> list[Finding]:
    """Kubernetes findings first (each id once, its evidence lines), then the server's."""
    found: list[Finding] = []
    pull_specific = False
    for line in clean_lines(text):
        for pattern, judge in RULES:
            match = pattern.search(line)
            verdict = judge(match) if match else None
            if verdict is None:
                continue
            finding_id, severity, title, fix = verdict
            if finding_id == "k8s-image-pull-backoff" and pull_specific:
                continue
            pull_specific |= finding_id in ("k8s-image-pull-auth", "k8s-image-not-found")
            found.append(Finding(finding_id, severity, title, (redact(line.strip()),),
                                 f"{fix} ({DOCS})"))
            break
    if pull_specific:
        found = [f for f in found if f.id != "k8s-image-pull-backoff"]
    return merge_by_id(found) + diagnose(text)
