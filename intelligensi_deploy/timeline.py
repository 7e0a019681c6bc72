"""Where the time to ready went: `up`'s own steps and the server's phases, in one line.

`up` times the launch (to active), the wait for SSH and the image step (present, pulled or
built); the server's `/ready` times its phases (`phase_elapsed_s`: starting, downloading,
loading, warming) and counts the bytes it downloaded. The record keeps them (`timeline`);
`up`'s last lines and `status` say them. Pure: a mapping in, text out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SERVER_PHASES = (("starting", "start"), ("loading", "load"), ("warming", "warm-up"))


def server_timeline(phases: Mapping[str, float], progress: Mapping[str, Any]
                    ) -> dict[str, Any]:
    """The server's part of the timeline, from a ready `/ready` answer."""
    timeline: dict[str, Any] = {name: float(phases[name]) for name, _ in SERVER_PHASES
                                if name in phases}
    timeline["downloading"] = float(phases.get("downloading", 0.0))
    timeline["bytes_downloaded"] = int(progress.get("bytes_done") or 0)
    for key in ("compile_cache_hits", "compile_cache_misses"):
        if key in progress:
            timeline[key] = int(progress[key] or 0)
    return timeline


def total_s(timeline: Mapping[str, Any]) -> float:
    """The seconds the timeline accounts for."""
    keys = ("launch", "ssh", "image", "downloading", *(name for name, _ in SERVER_PHASES))
    return sum(float(timeline.get(key) or 0.0) for key in keys)


def describe(timeline: Mapping[str, Any] | None) -> str:
    """`Time to ready 312 s: launch + boot 95 s, SSH 4 s, image pulled 60 s, download
    23.8 GB in 132 s (180 MB/s), load 15 s, warm-up 6 s`; "" without a timeline."""
    if not timeline:
        return ""
    parts: list[str] = []
    if "launch" in timeline:
        parts.append(f"launch + boot {timeline['launch']:.0f} s")
    if "ssh" in timeline:
        parts.append(f"SSH {timeline['ssh']:.0f} s")
    if "image" in timeline:
        parts.append(f"image {timeline.get('image_how') or ''} {timeline['image']:.0f} s"
                     .replace("  ", " "))
    if "downloading" in timeline:
        parts.append(_download(timeline))
    parts += [f"{label} {timeline[name]:.0f} s" for name, label in SERVER_PHASES
              if name in timeline and name != "starting"]
    if parts and parts[-1].startswith("warm-up") and _compiled(timeline):
        parts[-1] += f" ({_compiled(timeline)})"
    return f"Time to ready {total_s(timeline):.0f} s: " + ", ".join(parts)


def _compiled(timeline: Mapping[str, Any]) -> str:
    """`from cache` / `compiled` / `partly from cache` when the warm-up compiled anything."""
    hits = int(timeline.get("compile_cache_hits") or 0)
    misses = int(timeline.get("compile_cache_misses") or 0)
    if hits and not misses:
        return "from cache"
    if misses and not hits:
        return "compiled"
    return "partly from cache" if hits else ""


def _download(timeline: Mapping[str, Any]) -> str:
    seconds = float(timeline.get("downloading") or 0.0)
    done = int(timeline.get("bytes_downloaded") or 0)
    if done == 0:
        where = f"the file system {timeline['file_system']}" if timeline.get("file_system") \
            else "the cache"
        return f"download 0 bytes (all from {where})"
    rate = f", {done / seconds / 1e6:.0f} MB/s" if seconds > 0 else ""
    return f"download {done / 1e9:.2f} GB in {seconds:.0f} s{rate}"
