"""Reading /ready and waiting on it: ready, failed and still-loading are told apart."""

from __future__ import annotations

import pytest

from intelligensi_deploy.health import ReadyStatus, ReadyTimeout, ServerFailed, wait_ready


def test_parse_downloading_progress() -> None:
    s = ReadyStatus.parse(503, {"state": "downloading",
                                "progress": {"bytes_done": 1.5e9, "bytes_total": 23.8e9}})
    assert s.loading and not s.ready
    assert s.describe() == "downloading 1.50/23.80 GB"


def test_warming_shows_sizes_done() -> None:
    s = ReadyStatus.parse(503, {"state": "warming",
                                "progress": {"warm_sizes_done": 2, "warm_sizes_total": 3}})
    assert s.loading and s.describe() == "warming 2/3 sizes"


def test_parse_garbage_is_not_ready() -> None:
    s = ReadyStatus.parse(502, "<html>bad gateway</html>")
    assert not s.ready and not s.failed and s.unreachable


def test_ready_needs_200() -> None:
    assert not ReadyStatus.parse(503, {"state": "ready"}).ready
    assert ReadyStatus.parse(200, {"state": "ready"}).ready


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def test_wait_returns_when_ready() -> None:
    answers = iter([ReadyStatus(state="unreachable", unreachable="ConnectError"),
                    ReadyStatus.parse(503, {"state": "loading"}),
                    ReadyStatus.parse(200, {"state": "ready"})])
    seen: list[str] = []
    clock = FakeClock()
    status = wait_ready(lambda: next(answers), 60, on_status=lambda s: seen.append(s.state),
                        sleep=clock.sleep, clock=clock)
    assert status.ready and seen == ["unreachable", "loading", "ready"]


def test_wait_raises_server_failed_with_hint() -> None:
    failed = ReadyStatus.parse(503, {"state": "failed", "error": {
        "type": "GatedRepoError", "message": "401", "hint": "Set HF_TOKEN"}})
    clock = FakeClock()
    with pytest.raises(ServerFailed) as info:
        wait_ready(lambda: failed, 60, sleep=clock.sleep, clock=clock)
    assert "GatedRepoError" in info.value.message and "HF_TOKEN" in (info.value.fix or "")


def test_timeout_while_loading_says_do_not_redeploy() -> None:
    clock = FakeClock()
    with pytest.raises(ReadyTimeout) as info:
        wait_ready(lambda: ReadyStatus.parse(503, {"state": "downloading"}), 10,
                   sleep=clock.sleep, clock=clock)
    assert "do not redeploy" in (info.value.fix or "")
    assert clock.now >= 10


def test_polls_quickly_at_first_then_at_the_interval() -> None:
    """A server ready in a second is seen within half a second of it; a long load is polled
    every `interval` once the first minute has gone."""
    pauses: list[float] = []
    clock = FakeClock()

    def sleep(s: float) -> None:
        pauses.append(s)
        clock.sleep(s)

    with pytest.raises(ReadyTimeout):
        wait_ready(lambda: ReadyStatus.parse(503, {"state": "loading"}), 100, interval=2.0,
                   sleep=sleep, clock=clock)
    assert pauses[:120] == [0.5] * 120  # the first 60 s
    assert set(pauses[120:]) == {2.0} and len(pauses) == 120 + 20
