"""Ray's own words in a node's log, told as the cluster findings. Pure: lines in, findings out.

A cluster node's container log is mostly Ray's output (`ray start --block` on a worker; the
head's Ray, its Serve controller and our endpoint on node 1). The texts matched here were
produced by real Ray 2.60 runs (tests/test_ray_texts.py makes them again; the captures are in
tests/fixtures/ray_texts/):

- a worker refused for a wrong cluster token (``InvalidAuthToken``): ``node-not-joined``;
- a worker that cannot reach the head's GCS: ``node-not-joined`` while the log shows it never
  joined ("Ray runtime started." not yet printed), ``head-lost`` once it had: a node that
  joined and then loses the GCS has lost the head; one that never got in has a problem of
  its own (the head's address, the firewall, a head still starting);
- the raylet's GCS timeout after joining ("GCS may have been killed"): ``head-lost``;
- a Serve replica whose constructor raised, and "Deploying application ... failed":
  ``replica-failed`` with the exception line as evidence (``replica-oom`` for a memory error);
- Ray's memory monitor killing a worker: ``replica-oom``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from intelligensi_deploy.diagnosis.cluster_findings import CLUSTER_CATALOGUE
from intelligensi_deploy.diagnosis.findings import Finding, dedupe

__all__ = ["ray_claims", "ray_findings", "strip_ray_prefix"]

# "(ServeController pid=17382) ", "(ServeReplica:default:Broken pid=9, ip=10.0.0.2) ",
# "(raylet) ", "(raylet, ip=10.0.0.2) ": the source Ray puts before a worker's forwarded line
_PREFIX = re.compile(r"^\((?:[\w:.\-]+ )?pid=\d+(?:, ip=[\w.:\-]+)?\) |^\(raylet(?:, ip=[\w.:\-]+)?\) ")

_JOINED = re.compile(r"\bRay runtime started\.")
_TOKEN = re.compile(r"InvalidAuthToken|Authentication token is missing or incorrect")
_GCS_UNREACHABLE = re.compile(
    r"Failed to connect to GCS at address \S+ within \d+ seconds|"
    r"Failed to get cluster ID from GCS server: TimedOut|"
    r"Timed out while waiting for GCS to become available|"
    r"\bFailed to connect to GCS\. Last connection error")
_GCS_LOST = re.compile(r"Failed to connect to GCS within \d+ seconds\. GCS may have been killed|"
                       r"\bGCS has been down\b")
_SUBPROCESS_DIED = re.compile(r"Some Ray subprocesses exited unexpectedly")
_DIED_PROCESS = re.compile(r"^(?:\S+ \S+\s+ERR \S+ -- )?\s*(gcs_server|raylet|\w+) \[exit code="
                           r"(-?\d+)\]")
_REPLICA_EXCEPTION = re.compile(r"Exception in Replica\(id='([^']+)', deployment='([^']+)'")
_DEPLOY_FAILED = re.compile(r"Deploying application \S+ failed\b|"
                            r"Failed to update the deployments \[")
_MEMORY_MONITOR = re.compile(r"worker\(s\) were killed due to the node running low on memory|"
                             r"Task was killed due to the node running low on memory|"
                             r"Ray killed \d+ worker\(s\) based on the killing policy|"
                             r"\bray\.exceptions\.OutOfMemoryError\b|^OOM kill reason: ")
_OOM = re.compile(r"out of memory|OutOfMemoryError|running low on memory|OOMKilled",
                  re.IGNORECASE)
# an exception line of a traceback (after the prefix is gone); not a log record or a frame
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(?:\([\w.]+\))?: \S")
_LOG_RECORD = re.compile(r"^(?:INFO|ERROR|WARNING|DEBUG|CRITICAL) \d{4}-|^\d{4}-\d{2}-\d{2}[ T]|"
                         r"^\[\d{4}-")
_WRAPPERS = ("RuntimeError: Traceback", "ray.exceptions.RayTaskError")
# Ray's record heads, "[2026-12-03 12:34:52,893 W 14213 14213] rpc_client.h:153: " and
# "2026-12-03 12:38:06,892\tERR scripts.py:1307 -- ": gone from evidence, so repeats merge
_RECORD_HEAD = re.compile(r"^\[\d{4}-[^\]]*\] (?:\(\w+\) )?[\w.]+:\d+: |"
                          r"^\d{4}-\d{2}-\d{2} [\d:,.]+\s+[A-Z]+ [\w.]+:\d+ -- |"
                          r"^[A-Z]+ \d{4}-\d{2}-\d{2} [\d:,.]+ \w+ \d+ -- ")
_ANY = (_TOKEN, _GCS_UNREACHABLE, _GCS_LOST, _DEPLOY_FAILED, _MEMORY_MONITOR)

TOKEN_TITLE = "A node was refused by the Ray head: its cluster token (RAY_AUTH_TOKEN) is wrong"
TOKEN_FIX = ("Every node must carry node 1's RAY_AUTH_TOKEN (in each node's 0600 env file, "
             "~/.fluxdeploy/<name>-nodeN.env): a node started by hand, or a head whose file "
             "was made anew, differs. `fluxdeploy up --force` writes node 1's token to every "
             "node and restarts them.")
NOT_JOINED_TITLE = "A worker cannot reach the Ray head's GCS: it never joined the cluster"
NOT_JOINED_FIX = ("The worker dials FLUX_RAY_HEAD (node 1's address, port 6379): check that "
                  "node 1's container runs (`fluxdeploy logs --node 1`), and that the "
                  "deployment's firewall ruleset has the /32 rule for this node (`fluxdeploy "
                  "doctor`); then `fluxdeploy up` again (it resumes).")
GCS_LOST_TITLE = "A worker lost the Ray head's GCS after joining: the head is gone"
DIED_TITLE = "Ray's processes on this node died ({names})"
REPLICA_TITLE = "A Ray Serve replica's constructor raised: Serve stopped the replica"
DEPLOY_TITLE = "Ray Serve could not deploy the application (its replicas failed to start)"
MEMORY_TITLE = "Ray's memory monitor killed a worker: the node ran low on host RAM"
MEMORY_FIX = ("Ray kills a worker when the node's RAM use passes RAY_memory_usage_threshold "
              "(0.95 by default): use a machine with more RAM, fewer replicas per node, or a "
              "memory strategy that keeps the weights off host RAM (memory gpu, not "
              "cpu/sequential offload); `free -g` on the node shows the RAM.")


def strip_ray_prefix(line: str) -> str:
    """`line` without Ray's "(ServeController pid=N) " source prefix."""
    return _PREFIX.sub("", line, count=1)


def ray_claims(exception_text: str) -> bool:
    """Whether a traceback's exception is one of Ray's texts told here (not a server crash)."""
    return any(p.search(line) for line in exception_text.splitlines() for p in _ANY)


def ray_findings(lines: Sequence[str]) -> tuple[list[tuple[int, Finding]], set[int]]:
    """The cluster findings in cleaned log `lines`, each with the line number it starts at,
    and the line numbers Ray's texts took (no other rule reads them again)."""
    text = [strip_ray_prefix(line) for line in lines]
    found: list[tuple[int, Finding]] = []
    used: set[int] = set()
    refused = any(_TOKEN.search(line) for line in text)  # then the GCS errors follow from it
    joined = False
    for n, line in enumerate(text):
        if _JOINED.search(line):
            joined = True
        hit = _line_finding(line, joined, refused)
        if hit is not None:
            found.append((n, hit))
            used.add(n)
        elif _SUBPROCESS_DIED.search(line):
            found.append((n, _died(text, n, joined)))
            used.add(n)
        elif _REPLICA_EXCEPTION.search(line):
            found.append((n, _replica_failure(text, n)))
    return found, used


def _line_finding(line: str, joined: bool, refused: bool) -> Finding | None:
    if _TOKEN.search(line) or (refused and _GCS_UNREACHABLE.search(line)):
        return _make("node-not-joined", _until_sentence(line, 2), TOKEN_TITLE, TOKEN_FIX)
    if _GCS_UNREACHABLE.search(line):
        if joined:
            return _make("head-lost", line, GCS_LOST_TITLE)
        return _make("node-not-joined", line, NOT_JOINED_TITLE, NOT_JOINED_FIX)
    if _GCS_LOST.search(line):
        return _make("head-lost", _until_sentence(line, 2), GCS_LOST_TITLE)
    if _DEPLOY_FAILED.search(line):
        kind = "replica-oom" if _OOM.search(line) else "replica-failed"
        return _make(kind, line, DEPLOY_TITLE)
    if _MEMORY_MONITOR.search(line):
        return _make("replica-oom", _until_sentence(line, 2), MEMORY_TITLE, MEMORY_FIX)
    return None


def _died(text: Sequence[str], n: int, joined: bool) -> Finding:
    """"Some Ray subprocesses exited unexpectedly" and the names listed under it: the head's
    GCS dying is head-lost; a worker's raylet whose tail shows the GCS lost too."""
    listed = [m.group(1) for line in text[n + 1:n + 6] if (m := _DIED_PROCESS.match(line))]
    tail = text[n + 1:]
    evidence = [text[n].strip(), *(f"{name} exited" for name in listed)]
    gcs = next((line for line in tail if _GCS_LOST.search(line)), None)
    if "gcs_server" in listed or gcs is not None:
        return _make("head-lost", [*evidence, *([_until_sentence(gcs, 2)] if gcs else [])],
                     GCS_LOST_TITLE if gcs else "The Ray head's GCS process died")
    title = DIED_TITLE.format(names=", ".join(listed) or "see the log")
    return _make("node-not-joined", evidence, title if joined else NOT_JOINED_TITLE)


def _replica_failure(text: Sequence[str], n: int) -> Finding:
    """"Exception in Replica(...)": the last exception line of the traceback under it (the
    root cause; Ray wraps it in RayTaskError and a RuntimeError of its own)."""
    match = _REPLICA_EXCEPTION.search(text[n])
    assert match is not None
    last = ""
    for line in text[n + 1:n + 120]:
        if _LOG_RECORD.match(line):
            break
        if _EXCEPTION.match(line) and not line.startswith(_WRAPPERS):
            last = line.strip()
    cause = last or text[n].strip()
    kind = "replica-oom" if _OOM.search(cause) else "replica-failed"
    return _make(kind, f"replica {match.group(1)} of {match.group(2)}: {cause}", REPLICA_TITLE)


def _until_sentence(line: str, sentences: int) -> str:
    """The first `sentences` sentences of one of Ray's long lines (its advice follows)."""
    parts = re.split(r"(?<=\.) ", line.strip())
    return " ".join(parts[:sentences])


def _without_heads(line: str) -> str:
    """`line` without Ray's record heads (the tail of raylet.out comes with two)."""
    line = line.strip()
    while (bare := _RECORD_HEAD.sub("", line, count=1)) != line:
        line = bare
    return line


def _make(kind: str, evidence: str | list[str], title: str, fix: str | None = None
          ) -> Finding:
    lines = [evidence] if isinstance(evidence, str) else evidence
    return CLUSTER_CATALOGUE[kind].finding(dedupe(_without_heads(line) for line in lines),
                                           title=title, fix=fix)
