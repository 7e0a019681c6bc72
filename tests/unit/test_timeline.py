"""Where the time to ready went: `up`'s steps and the server's phases in one line."""

from __future__ import annotations

from intelligensi_deploy.health import ReadyStatus
from intelligensi_deploy.timeline import describe, server_timeline, total_s

READY = {"state": "ready", "ready": True, "elapsed_s": 205.0,
         "phase_elapsed_s": {"starting": 0.4, "downloading": 132.2, "loading": 15.1,
                             "warming": 6.3},
         "progress": {"bytes_done": 23_800_000_000, "bytes_total": 23_800_000_000}}


def test_a_first_vm_downloads_and_says_how_fast() -> None:
    ready = ReadyStatus.parse(200, READY)
    timeline = {"launch": 95.0, "ssh": 4.2, "image": 60.4, "image_how": "pulled",
                **server_timeline(ready.phases, ready.progress)}
    assert describe(timeline) == (
        "Time to ready 314 s: launch + boot 95 s, SSH 4 s, image pulled 60 s, download "
        "23.80 GB in 132 s, 180 MB/s, load 15 s, warm-up 6 s")
    assert round(total_s(timeline), 1) == 313.6


def test_a_second_vm_on_the_file_system_downloads_nothing() -> None:
    body = READY | {"phase_elapsed_s": {"starting": 0.3, "downloading": 0.8, "loading": 14.0,
                                        "warming": 5.0}, "progress": {"bytes_done": 0}}
    ready = ReadyStatus.parse(200, body)
    timeline = {"ssh": 3.0, "image": 1.0, "image_how": "present",
                **server_timeline(ready.phases, ready.progress),
                "file_system": "fluxdeploy-web"}
    text = describe(timeline)
    assert "download 0 bytes (all from the file system fluxdeploy-web)" in text
    assert "launch" not in text and text.startswith("Time to ready 24 s: SSH 3 s")


def test_no_timeline_says_nothing() -> None:
    assert describe({}) == "" and describe(None) == ""


def test_the_warm_up_says_whether_it_compiled_or_loaded_the_graphs() -> None:
    base = {"warming": 42.0}
    assert describe(base | {"compile_cache_misses": 3}).endswith("warm-up 42 s (compiled)")
    assert describe(base | {"compile_cache_hits": 3}).endswith("warm-up 42 s (from cache)")
    assert describe(base | {"compile_cache_hits": 2, "compile_cache_misses": 1}).endswith(
        "(partly from cache)")
    assert describe(base).endswith("warm-up 42 s")
    ready = ReadyStatus.parse(200, READY | {"progress": {"compile_cache_hits": 4}})
    assert server_timeline(ready.phases, ready.progress)["compile_cache_hits"] == 4
