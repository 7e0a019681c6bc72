"""Is the server still loading? Pure reading of cleaned log lines (diagnose.py calls it).

Three shapes of an unfinished load give `still-loading`:
- the last state the server logged is a loading one (`loading model=`, `memory plan:`,
  `warming 2/3 sizes: ...`, or `state=downloading`);
- the log holds Hugging Face download bars (`model-00001-of-00003.safetensors:   8%|▊ |
  797M/9.98G [00:25<04:52, 31.4MB/s]`) and no state line: the evidence quotes the bytes seen
  per file, their sum and the last rate, so "it is downloading, do not redeploy" is said;
- it ends on a fetch or loading bar (`Fetching 23 files:  43%|`, `Loading checkpoint shards`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from intelligensi_deploy.diagnosis.findings import Finding, make_finding

# The server's own lines (server/flux_server/loader.py) and `state=NAME` transitions.
_STATE_LINES: tuple[tuple[re.Pattern[str], str | None], ...] = (
    (re.compile(r"\bstate\b\"?\s*[=:]\s*\"?(starting|downloading|loading|warming|ready|failed)\b"),
     None),
    (re.compile(r"\bmodel load failed:|\bconfiguration error: type="), "failed"),
    (re.compile(r"\bmodel ready:"), "ready"),
    (re.compile(r"\bdownloading model="), "downloading"),
    (re.compile(r"\bloading model=|\bmemory plan: |\bspeed plan: "), "loading"),
    (re.compile(r"\bwarming \d+(?:/\d+)? sizes\b"), "warming"),
)
LOADING_STATES = ("starting", "downloading", "loading", "warming")
# Download and load bars only (a generation's step bar has no description).
_PROGRESS_BAR = re.compile(r"(?:Fetching|Downloading|Loading)[^%|]*:\s*(\d{1,3})%\|")
# One file's download bar, as huggingface_hub draws it with tqdm (unit B, SI prefixes).
_FILE_BAR = re.compile(
    r"(?P<file>[\w.\-/]+\.(?:safetensors|bin|json|txt|model|pth|gguf|msgpack))"
    r"(?:\s*\([^)]*\))?:\s*(?P<pct>\d{1,3})%\|[^|]*\|\s*"
    r"(?P<done>[\d.]+)\s*(?P<done_unit>[kMGTP]?)B?/(?P<total>[\d.]+)\s*(?P<total_unit>[kMGTP]?)B?"
    r"(?:\s*\[[^\]]*?(?P<rate>[\d.]+\s*[kMGTP]?B/s)\])?")
_SI = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}


def server_state(line: str) -> str | None:
    """The load state a server log line announces, if any."""
    for pattern, state in _STATE_LINES:
        m = pattern.search(line)
        if m:
            return state or m.group(1)
    return None


def last_state(plain: list[tuple[int, str]]) -> tuple[str, str] | None:
    """(state, line) of the last line that announces a load state."""
    for _, line in reversed(plain):
        state = server_state(line)
        if state:
            return state, line.strip()
    return None


@dataclass(frozen=True)
class FileBar:
    """The last drawn state of one file's download bar."""

    file: str
    percent: int
    done_bytes: float
    total_bytes: float
    rate: str | None


def file_bars(plain: list[tuple[int, str]]) -> dict[str, FileBar]:
    """Each downloaded file's last bar, in order of first appearance."""
    bars: dict[str, FileBar] = {}
    for _, line in plain:
        for m in _FILE_BAR.finditer(line):
            bars[m["file"]] = FileBar(
                m["file"], int(m["pct"]), float(m["done"]) * _SI[m["done_unit"]],
                float(m["total"]) * _SI[m["total_unit"]],
                m["rate"].replace(" ", "") if m["rate"] else None)
    return bars


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def download_evidence(bars: dict[str, FileBar], rate: str | None) -> str:
    """`downloading 3 files: 1.61 GB of 23.80 GB seen (7%), last rate 31.4MB/s`."""
    done = sum(b.done_bytes for b in bars.values())
    total = sum(b.total_bytes for b in bars.values())
    unfinished = [b for b in bars.values() if b.percent < 100]
    share = f" ({100 * done / total:.0f}%)" if total else ""
    text = (f"downloading {len(bars)} file{'s' if len(bars) != 1 else ''}: {_gb(done)} of "
            f"{_gb(total)} seen{share}, {len(unfinished)} unfinished")
    return text + (f", last rate {rate}" if rate else "")


def _download_lines(plain: list[tuple[int, str]]) -> list[str]:
    bars = file_bars(plain)
    if not bars:
        return []
    last_line = next(line for _, line in reversed(plain) if _FILE_BAR.search(line))
    rate = next((b.rate for b in reversed(list(bars.values())) if b.rate), None)
    return [download_evidence(bars, rate), last_line.strip()]


def loading_finding(plain: list[tuple[int, str]]) -> Finding | None:
    """still-loading for an unfinished load (see the module docstring), else None."""
    downloads = _download_lines(plain)
    last = last_state(plain)
    if last:
        state, line = last
        if state not in LOADING_STATES:
            return None
        return make_finding("still-loading", [line] + (downloads if state in (
            "starting", "downloading") else []))
    bars = file_bars(plain)
    if bars and (any(b.percent < 100 for b in bars.values())
                 or _FILE_BAR.search(plain[-1][1])):
        return make_finding("still-loading", downloads,
                            title="The model is still downloading")
    if plain:
        line = plain[-1][1]
        bar = _PROGRESS_BAR.search(line)
        if bar and int(bar.group(1)) < 100:
            return make_finding("still-loading", [line.strip()])
    return None
