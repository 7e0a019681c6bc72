"""Log diagnosis: container log text in, findings out. Pure: no I/O, no clock, no environment
beyond what `redact` reads.

The log is first made readable (ANSI colours, `docker logs -t` timestamps and tqdm's carriage
returns removed), then split into Python traceback chains and plain lines. A traceback chain
gives exactly one finding: the first exception from the root cause onwards that a rule
recognises (so a GatedRepoError wins over the OSError diffusers raises from it), or
``container-crash`` with the last exception line when no rule does. Plain lines are matched
against the same rules (docker, registry, kernel and uvicorn print their errors as plain lines).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from intelligensi_deploy.diagnosis.access import unauthorized_storm
from intelligensi_deploy.diagnosis.build_failure import build_failure_finding
from intelligensi_deploy.diagnosis.findings import (
    SEVERITY_RANK,
    Finding,
    Severity,
    dedupe,
    make_finding,
    merge_by_id,
)
from intelligensi_deploy.diagnosis.load_rules import LOAD_RULES
from intelligensi_deploy.diagnosis.loading import last_state, loading_finding, server_state
from intelligensi_deploy.diagnosis.ray_log import ray_claims, ray_findings
from intelligensi_deploy.redact import redact

__all__ = ["clean_lines", "diagnose", "has_errors", "parse_log", "server_state"]

MAX_EVIDENCE_CHARS = 400

# --------------------------------------------------------------------------- cleaning

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-B]")
_DOCKER_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}) ?")


def clean_lines(text: str) -> list[str]:
    """The lines as a terminal would finally show them: no colours, timestamps or bar redraws."""
    lines = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = _DOCKER_TIMESTAMP.sub("", _ANSI.sub("", raw))
        if "\r" in line:  # tqdm redraws: keep what was drawn last
            parts = [p for p in line.split("\r") if p.strip()]
            line = _DOCKER_TIMESTAMP.sub("", parts[-1]) if parts else ""
        lines.append(line.rstrip())
    return lines


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    """A finding id and the real message texts that show it."""

    finding_id: str
    pattern: re.Pattern[str]
    severity: Severity | None = None  # None: the catalogue's severity
    title: str | None = None


def _rule(finding_id: str, regex: str, severity: Severity | None = None,
          title: str | None = None) -> Rule:
    return Rule(finding_id, re.compile(regex, re.IGNORECASE), severity, title)


_REPO_NOT_FOUND_TITLE = ("The model repository was not found on the Hub (wrong name, or private "
                         "or gated without a token)")
_EXIT_137_TITLE = "The container was killed (exit 137): usually the host ran out of RAM"
_DAEMON = r"(?:error response from daemon|error from registry|failed to (?:authorize|resolve|" \
          r"fetch|pull|copy)|error pulling|docker: )"

# Order matters only inside one text: the first rule that matches names the finding.
RULES: tuple[Rule, ...] = (
    # huggingface_hub / diffusers: gated, private, missing, bad token
    _rule("hf-auth", r"Cannot access gated repo for url|\bGatedRepoError\b"),
    _rule("hf-auth", r"Invalid credentials in Authorization header|Invalid user token"),
    _rule("hf-auth", r"\b40[13] Client Error\b|'40[13] (?:Unauthorized|Forbidden)' for url '"
          r"[^']*(?:huggingface|/api/models/|/resolve/)"),
    _rule("hf-auth", r"Make sure your token has the correct permissions"),
    _rule("hf-auth", r"\bRepositoryNotFoundError\b|Repository Not Found for url|is not a local "
          r"folder and is not a valid model identifier", title=_REPO_NOT_FOUND_TITLE),
    # Hub unreachable or offline without the model cached
    _rule("hf-unreachable", r"offline mode is enabled|\bOfflineModeIsEnabled\b"),
    _rule("hf-unreachable", r"\bLocalEntryNotFoundError\b|We couldn't connect to '?https?://"),
    _rule("hf-unreachable", r"Cannot find an appropriate cached snapshot folder|Cannot find the "
          r"requested files in the disk cache|the model is not fully cached locally"),
    _rule("hf-unreachable", r"trying to locate the files? on the Hub"),
    # speed options (server/flux_server/speed.py, torchao, torch)
    _rule("fp8-unsupported", r"FLUX_(?:FP8=on|QUANT=fp8) needs compute capability >= 8\.9|"
          r"speed\.fp8 on needs compute capability|Float8 dynamic (?:activation )?quantization "
          r"(?:is only supported on|requires) CUDA|_scaled_mm is only supported on CUDA devices "
          r"with compute capability"),
    _rule("recompile-storm", r"torch\._dynamo hit config\.(?:accumulated_)?(?:recompile|cache_size)"
          r"_limit|\brecompile storm: \d+ graphs compiled since ready"),
    _rule("compile-slow-start", r"\bwarming \d+ sizes: .*\(compile=(?:regional|full)|"
          r"\bwarming \d+/\d+ sizes: \S+ in [\d.]+s \([1-9]\d* graphs compiled\)"),
    *(_rule(*spec) for spec in LOAD_RULES),  # load_rules.py: device map, Hub, cache
    # GPU memory (the server's own fallback to a lighter strategy is not a failure)
    _rule("cuda-oom", r"CUDA out of memory with .*; falling back to", severity="info",
          title="The GPU ran out of memory; the server fell back to a lighter memory strategy"),
    _rule("cuda-oom", r"CUDA out of memory|\bOutOfMemoryError\b|CUDA error: out of memory"),
    # host memory
    _rule("oom-killed", r"\"?OOMKilled\"?\s*[:=]\s*true|Out of memory: Killed process|"
          r"Memory cgroup out of memory|\boom-kill:"),
    _rule("oom-killed", r"^\s*Killed\s*$|line \d+:\s+\d+ Killed\b"),
    _rule("oom-killed", r"Exited \(137\)|exit(?:ed with)? code:? 137\b|\"ExitCode\":\s*137\b",
          severity="warning", title=_EXIT_137_TITLE),
    # NVIDIA driver / container toolkit
    _rule("nvidia-runtime", r"could not select device driver \"[^\"]*\" with capabilities"),
    _rule("nvidia-runtime", r"Failed to initialize NVML|NVML: Driver/library version mismatch|"
          r"\bnvml error\b|nvidia-container-cli: .*error|unknown or invalid runtime name: nvidia"),
    _rule("nvidia-runtime", r"NVIDIA-SMI has failed because it couldn't communicate"),
    _rule("nvidia-runtime", r"CUDA driver version is insufficient for CUDA runtime version|"
          r"The NVIDIA driver on your system is too old"),
    _rule("nvidia-runtime", r"UserWarning: CUDA initialization: .*no NVIDIA driver",
          severity="warning"),
    _rule("nvidia-runtime", r"Found no NVIDIA driver on your system|\bno NVIDIA driver\b"),
    # the server's own start-up check (server/flux_server/gpu_check.py), after the driver rules
    # above: a reason that quotes a driver error is nvidia-runtime
    _rule("gpu-not-visible", r"requires a GPU \(FLUX_REQUIRE_GPU=1\) but CUDA sees none|"
          r"\bGpuNotVisible\b|\bcuda: not available\b(?!.*\bruns on the CPU\b)"),
    # a Ray Serve replica (or its node) gone mid-request: the endpoint retried it elsewhere
    _rule("replica-lost", r"ray\.exceptions\.(?:ActorDiedError|ActorUnavailableError|"
          r"RayActorError)\b|replica lost during a request"),
    # disk
    _rule("disk-full", r"No space left on device"),
    _rule("disk-full", r"Not enough free disk space to download the file", severity="warning"),
    # ports
    _rule("port-in-use", r"address already in use|port is already allocated|\[Errno 98\]"),
    # uvicorn bound to loopback inside the container
    _rule("bound-to-loopback", r"(?:Uvicorn running on https?://|\bserving on )"
          r"(?:127\.\d+\.\d+\.\d+|localhost|\[?::1\]?):\d+"),
    # container registries (ghcr.io words it "unauthorized" / "denied"; distribution v2 differently)
    _rule("ghcr-auth", r"no basic auth credentials|login attempt to \S+ failed with status: "
          r"40[13]|denied: denied|pull access denied|requested access to the resource is denied"),
    _rule("ghcr-auth", _DAEMON + r".*(?:\bunauthorized\b|(?<!permission )\bdenied\b|"
          r"40[13] (?:Unauthorized|Forbidden))"),
    _rule("image-not-found", r"manifest unknown|manifest for \S+ not found|No such image:|"
          r"invalid reference format|repository name must be lowercase"),
    # an image built for another CPU (GH200 instances are arm64)
    _rule("container-crash", r"exec format error",
          title="The image was built for another CPU architecture (exec format error)"),
    _rule("image-not-found", r"failed to resolve reference \"[^\"]+\":.*\bnot found\b"),
)


def match_rule(text: str) -> tuple[Rule, str] | None:
    """The first rule (in RULES order) matching a line of `text`, with the line it matched."""
    lines = text.splitlines()
    for rule in RULES:
        for line in lines:
            if rule.pattern.search(line):
                return rule, line.strip()
    return None


# --------------------------------------------------------------------------- tracebacks

_TRACEBACK = re.compile(r"Traceback \(most recent call last\):")
_CHAIN_MARKERS = ("The above exception was the direct cause of the following exception:",
                  "During handling of the above exception, another exception occurred:")
_EXCEPTION_LINE = re.compile(
    r"^(?!(?:INFO|ERROR|WARNING|DEBUG|CRITICAL)\b)[A-Za-z_][\w.]*(?::\s|:$|$)")
_LOG_RECORD = re.compile(r"^(?:INFO|ERROR|WARNING|DEBUG|CRITICAL)\b|^\d{4}-\d{2}-\d{2}[ T]|"
                         r"^\[|^\S+ \|")
_MAX_MESSAGE_LINES = 12
# huggingface_hub's errors put the explanation in a second paragraph.
_MULTI_PARAGRAPH = re.compile(r"huggingface_hub\.errors\.|Client Error|\(Request ID:|"
                              r"HfHubHTTPError|GatedRepoError|RepositoryNotFoundError")
_PY_WARNING = re.compile(r"^\S+\.py:\d+: \w*Warning:")
# Lines logged just before a traceback of one failed request (uvicorn, server/flux_server/app.py).
_REQUEST_ERROR = re.compile(
    r"Exception in ASGI application|\bgeneration failed\b|\bunhandled error\b")


@dataclass
class Chain:
    """One traceback chain: exception texts from the root cause to the last one raised."""

    exceptions: list[str] = field(default_factory=list)
    start: int = 0
    in_request: bool = False


@dataclass
class ParsedLog:
    chains: list[Chain]
    plain: list[tuple[int, str]]   # (line number, line) outside tracebacks


def parse_log(lines: list[str]) -> ParsedLog:
    """Split cleaned lines into traceback chains and the plain lines around them."""
    chains: list[Chain] = []
    plain: list[tuple[int, str]] = []
    i, continuing = 0, False
    while i < len(lines):
        line = lines[i]
        if not _TRACEBACK.search(line):
            if line.strip() in _CHAIN_MARKERS:
                continuing = bool(chains)
            elif line.strip():
                plain.append((i, line))
                continuing = False
            i += 1
            continue
        if not continuing:
            before = " ".join(lines[max(0, i - 2):i])
            chains.append(Chain(start=i, in_request=bool(_REQUEST_ERROR.search(before))))
        i, exception = _read_traceback(lines, i + 1)
        if exception:
            chains[-1].exceptions.append(exception)
        continuing = False
    return ParsedLog(chains, plain)


def _read_traceback(lines: list[str], i: int) -> tuple[int, str]:
    """Skip the frames after a Traceback header; return the next index and the exception text."""
    while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
        i += 1
    if i >= len(lines) or not _EXCEPTION_LINE.match(lines[i]):
        return i, ""
    return _read_exception(lines, i)


def _read_exception(lines: list[str], i: int) -> tuple[int, str]:
    """The exception line at `i` and its message: its paragraph (several paragraphs only for
    huggingface_hub's errors), ending early where another tool's line or log record starts."""
    head = lines[i]
    message = [head]
    paragraphs = bool(_MULTI_PARAGRAPH.search(head))
    shows = _finding_id(head)
    i += 1
    while i < len(lines) and len(message) < _MAX_MESSAGE_LINES:
        line = lines[i]
        stripped = line.strip()
        if (stripped in _CHAIN_MARKERS or _TRACEBACK.search(line) or _LOG_RECORD.match(line)
                or _PY_WARNING.search(line)):
            break
        if not stripped:
            following = next((x.strip() for x in lines[i + 1:] if x.strip()), "")
            if not paragraphs or not following or following in _CHAIN_MARKERS:
                break
            message.append(line)
            i += 1
            continue
        hit = _finding_id(line)
        if hit and shows and hit != shows:
            break  # another problem's line, printed right after this one
        shows = shows or hit
        message.append(line)
        i += 1
    while message and not message[-1].strip():
        message.pop()
    return i, "\n".join(message)


def _finding_id(line: str) -> str | None:
    matched = match_rule(line)
    return matched[0].finding_id if matched else None


def _chain_finding(chain: Chain) -> Finding | None:
    """The root-most recognised exception of `chain`, else container-crash on the last one.

    Evidence: every exception of the chain that shows the same finding, the most specific
    rule first (a GatedRepoError line before the HTTP 401 under it).
    """
    if not chain.exceptions:
        return None
    recognised = [(exc, matched[0]) for exc in chain.exceptions if (matched := match_rule(exc))]
    if recognised:
        finding_id = recognised[0][1].finding_id  # the root-most recognised exception decides
        same = sorted((RULES.index(rule), exc) for exc, rule in recognised
                      if rule.finding_id == finding_id)
        evidence: list[str] = []
        for _, exc in same:
            head, *rest = exc.splitlines()
            evidence += [head.strip()]
            evidence += [line.strip() for line in rest if _finding_id(line) == finding_id]
        return _finding(RULES[same[0][0]], dedupe(evidence)[:4])
    last = chain.exceptions[-1].splitlines()[0].strip()
    if chain.in_request:
        return make_finding("container-crash", [last], severity="warning",
                            title="A request failed with an unhandled exception")
    return make_finding("container-crash", [last])


# --------------------------------------------------------------------------- hub warning

_HUB_WARNING = re.compile(r"Couldn't connect to the Hub:")
_HUB_WARNING_END = "Will try to load from local cache."


def _hub_warning_findings(lines: list[str]) -> tuple[list[Finding], set[int]]:
    """diffusers' "Couldn't connect to the Hub ... Will try to load from local cache." warning.

    The load may still succeed from the cache, so this block alone gives a warning (the Hub
    refused the token) or a note (the Hub was unreachable); the traceback that follows when
    the cache cannot help gives the error. Returns the findings and the line numbers used.
    """
    findings: list[Finding] = []
    used: set[int] = set()
    for i, line in enumerate(lines):
        if not _HUB_WARNING.search(line):
            continue
        block = [line]
        j = i + 1
        while j < len(lines) and j - i <= _MAX_MESSAGE_LINES and _HUB_WARNING_END not in lines[j]:
            block.append(lines[j])
            j += 1
        if j < len(lines) and _HUB_WARNING_END in lines[j]:
            used.update(range(i, j + 1))
        else:
            used.add(i)
            block = [line]
        matched = match_rule("\n".join(block))
        if matched and matched[0].finding_id == "hf-auth":
            rule, hit = matched
            findings.append(make_finding("hf-auth", dedupe([line.strip(), hit]),
                                         severity="warning", title=rule.title))
        else:
            findings.append(make_finding(
                "hf-unreachable", [line.strip()], severity="info",
                title="The Hugging Face Hub could not be reached; the model loads from the cache"))
    return findings, used


# --------------------------------------------------------------------------- diagnose


def diagnose(text: str, *, secrets: Iterable[str] = ()) -> list[Finding]:
    """Findings for a container log, errors first, each in order of first appearance.

    Evidence lines are redacted (token shapes, token variables, and `secrets`).
    """
    lines = clean_lines(text)
    build = build_failure_finding(lines)
    if build is not None:  # a docker build log: its cause is the one finding
        return [_redacted(build, secrets)]
    hub_findings, hub_lines = _hub_warning_findings(lines)
    ray_found, ray_lines = ray_findings(lines)  # a cluster node's log: Ray's own words
    parsed = parse_log(lines)
    plain = [(n, line) for n, line in parsed.plain if n not in hub_lines | ray_lines]

    ordered: list[tuple[int, Finding]] = list(ray_found)
    for chain in parsed.chains:
        if any(ray_claims(exc) for exc in chain.exceptions):
            continue  # Ray's own failure (told by ray_findings), not a server crash
        finding = _chain_finding(chain)
        if finding:
            ordered.append((chain.start, finding))
    for n, line in plain:
        matched = match_rule(line)
        if matched:
            ordered.append((n, _finding(matched[0], [line.strip()])))
    first_hub_line = min(hub_lines, default=0)
    ordered.extend((first_hub_line, f) for f in hub_findings)

    findings = merge_by_id([f for _, f in sorted(ordered, key=lambda item: item[0])])
    has_error = any(f.severity == "error" for f in findings)
    last = last_state(plain)
    if last and last[0] == "ready":  # compiling at start-up is news only until ready
        findings = [f for f in findings if f.id != "compile-slow-start"]
    if last and last[0] == "failed" and not has_error:
        findings.append(make_finding("container-crash", [last[1]],
                                     title="The server reported that loading failed"))
        has_error = True
    if not has_error:
        loading = loading_finding(plain)
        if loading:
            findings.append(loading)
    storm = unauthorized_storm(lines)
    if storm:
        findings.append(storm)
    findings.sort(key=lambda f: SEVERITY_RANK[f.severity])
    return [_redacted(f, secrets) for f in findings]


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


def _finding(rule: Rule, evidence: list[str]) -> Finding:
    return make_finding(rule.finding_id, evidence, severity=rule.severity, title=rule.title)


def _redacted(finding: Finding, secrets: Iterable[str]) -> Finding:
    extra = tuple(secrets)
    evidence = tuple(_shorten(redact(line, extra)) for line in finding.evidence)
    return Finding(finding.id, finding.severity, finding.title, evidence, finding.fix, finding.doc)


def _shorten(line: str) -> str:
    return line if len(line) <= MAX_EVIDENCE_CHARS else line[: MAX_EVIDENCE_CHARS - 1] + "…"
