"""`docker build` output as steps and layers (pure), for the classic builder and BuildKit.

Classic builder (Debian's docker.io):   ``Step 5/17 : RUN ...``, `` ---> Using cache``,
`` ---> Running in 3f2a...``, `` ---> 1a2b3c4d5e6f``.
BuildKit (``--progress=plain``, Docker CE): ``#8 [deps 3/6] RUN ...``, ``#8 CACHED``,
``#8 DONE 12.3s``, ``#8 ERROR: ...``.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

EventKind = Literal["step", "cached", "layer", "done"]

_CLASSIC_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_CLASSIC_CACHE = re.compile(r"^ ---> Using cache$")
_CLASSIC_LAYER = re.compile(r"^ ---> ([0-9a-f]{12})$")
_KIT_STEP = re.compile(r"^#(\d+) \[([^\]]*?)\s*(\d+)/(\d+)\] (.*)$")
_KIT_CACHED = re.compile(r"^#(\d+) CACHED$")
_KIT_DONE = re.compile(r"^#(\d+) DONE ([\d.]+)s$")
_BANNER = re.compile(r"legacy builder is deprecated|Install the buildx component|"
                     r"docs\.docker\.com/go/buildx|^DEPRECATED:|BuildKit is currently disabled")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")  # the classic builder colours stderr red
MAX_INSTRUCTION = 70


@dataclass(frozen=True)
class BuildEvent:
    """A step started, was taken from the cache, or produced a layer."""

    kind: EventKind
    step: str = ""          # "5/17" or "deps 3/6"
    text: str = ""          # the instruction, shortened
    layer: str = ""         # classic builder: the layer id
    seconds: float | None = None

    def describe(self) -> str:
        if self.kind == "step":
            return f"step {self.step}: {self.text}"
        if self.kind == "cached":
            return f"step {self.step}: cached"
        if self.kind == "layer":
            took = f" in {self.seconds:.1f} s" if self.seconds is not None else ""
            layer = f", layer {self.layer}" if self.layer else ""
            return f"step {self.step}: built{layer}{took}"
        return self.text


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_INSTRUCTION else text[: MAX_INSTRUCTION - 1] + "…"


@dataclass
class BuildProgress:
    """Feed it the build's lines; it returns the events they mean and keeps the last lines.

    `cached_steps` / `built_steps` are the instructions (as written) that came from the
    cache or ran: what the tests assert on, and what the summary reports.
    """

    tail_lines: int = 40
    tail: deque[str] = field(default_factory=deque)
    cached_steps: list[str] = field(default_factory=list)
    built_steps: list[str] = field(default_factory=list)
    _current: str = ""
    _current_text: str = ""
    _current_cached: bool = False
    _kit_cached: set[str] = field(default_factory=set)
    _kit_steps: dict[str, tuple[str, str]] = field(default_factory=dict)

    def feed(self, line: str) -> BuildEvent | None:
        line = _ANSI.sub("", line).rstrip("\r\n")
        if not line.strip() or _BANNER.search(line):
            return None
        self.tail.append(line)
        while len(self.tail) > self.tail_lines:
            self.tail.popleft()
        return self._classic(line) or self._buildkit(line)

    def _classic(self, line: str) -> BuildEvent | None:
        if match := _CLASSIC_STEP.match(line):
            self._current = f"{match.group(1)}/{match.group(2)}"
            self._current_text = match.group(3)
            self._current_cached = False
            return BuildEvent("step", self._current, _short(match.group(3)))
        if _CLASSIC_CACHE.match(line) and self._current:
            if self._current_cached:
                return None
            self.cached_steps.append(self._current_text)
            self._current_cached = True
            return BuildEvent("cached", self._current, _short(self._current_text))
        if (match := _CLASSIC_LAYER.match(line)) and self._current:
            if self._current_cached or self._current_text.upper().startswith("FROM "):
                return None  # a cached step was reported; FROM only names the base's layer
            self._current_cached = True  # one layer line per step
            self.built_steps.append(self._current_text)
            return BuildEvent("layer", self._current, _short(self._current_text),
                              layer=match.group(1))
        return None

    def _buildkit(self, line: str) -> BuildEvent | None:
        if match := _KIT_STEP.match(line):
            step = f"{match.group(2)} {match.group(3)}/{match.group(4)}".strip()
            self._kit_steps[match.group(1)] = (step, match.group(5))
            return BuildEvent("step", step, _short(match.group(5)))
        if (match := _KIT_CACHED.match(line)) and match.group(1) in self._kit_steps:
            step, text = self._kit_steps[match.group(1)]
            self.cached_steps.append(text)
            self._kit_cached.add(match.group(1))
            return BuildEvent("cached", step, _short(text))
        if (match := _KIT_DONE.match(line)) and match.group(1) in self._kit_steps:
            step, text = self._kit_steps[match.group(1)]
            if match.group(1) in self._kit_cached:
                return None
            self.built_steps.append(text)
            return BuildEvent("layer", step, _short(text), seconds=float(match.group(2)))
        return None

    def summary(self) -> str:
        return f"{len(self.built_steps)} step(s) built, {len(self.cached_steps)} from the cache"
