"""A storm of refused API keys in the server's request lines is an info finding with the
count. The lines are made by the server's own formatter (flux_server.reqlog.format_line),
with the fields its key middleware sets."""

from __future__ import annotations

from flux_server.reqlog import format_line

from intelligensi_deploy.diagnosis.diagnose import diagnose


def _refused(client: str, n: int, reason: str = "rejected") -> list[str]:
    return [f"2026-12-03 13:10:{i % 60:02d},000 INFO flux_server.request: "
            + format_line(f"r{i}", "/generate", 401, {"auth": reason, "client": client}, 0.001)
            for i in range(n)]


def test_many_refusals_from_one_address_are_counted_and_named() -> None:
    log = "\n".join([*_refused("203.0.113.9", 37), *_refused("198.51.100.4", 5, "missing")])
    findings = diagnose(log)
    assert [f.id for f in findings] == ["unauthorized-storm"]
    storm = findings[0]
    assert storm.severity == "info"
    assert storm.evidence[0] == ("37 requests refused with 401 from 203.0.113.9 (42 refused "
                                 "in this log, from 2 addresses)")
    assert storm.evidence[1] == "then 5 from 198.51.100.4"
    assert "public_cidr" in storm.fix and "key rotate" in storm.fix


def test_a_few_refusals_are_not_news() -> None:
    assert diagnose("\n".join(_refused("203.0.113.9", 19))) == []


def test_the_storm_is_reported_beside_a_real_error() -> None:
    log = "\n".join([*_refused("203.0.113.9", 25),
                     "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"])
    assert [f.id for f in diagnose(log)] == ["cuda-oom", "unauthorized-storm"]
