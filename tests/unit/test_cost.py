"""The price and spend arithmetic `up` and `status` show (issue 16): pure, over records."""

from __future__ import annotations

import pytest

from intelligensi_deploy.cost import (
    Spend,
    describe_spend,
    dollars,
    format_duration,
    price_line,
    record_spend,
)

NOW = 1_000_000.0


def test_the_price_line_names_type_price_and_a_cluster_total() -> None:
    assert price_line("gpu_1x_a10", 75) == "gpu_1x_a10 at $0.75/h"
    assert price_line("gpu_1x_a100", 129, 3) == "3 x gpu_1x_a100 at $1.29/h each = $3.87/h"
    assert dollars(143_200) == "$1,432.00"


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (59.4, "59 s"), (60, "1 min"), (75, "1 min 15 s"), (599, "9 min 59 s"),
    (3599, "59 min"), (3600, "1 h 00 min"),
    (2 * 3600 + 5 * 60, "2 h 05 min"), (47 * 3600, "47 h 00 min"), (50 * 3600, "2 d 2 h"),
    (-5, "0 s"),
])
def test_durations_read_as_a_person_says_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_spend_is_price_times_hours_since_launch() -> None:
    spend = Spend.of(129, NOW - 2 * 3600, NOW)
    assert spend.price_per_hour == pytest.approx(1.29)
    assert spend.uptime_s == pytest.approx(7200)
    assert spend.spend == pytest.approx(2.58)


def test_a_record_without_a_launch_time_has_no_made_up_uptime() -> None:
    spend = Spend.of(75, None, NOW)
    assert (spend.price_per_hour, spend.uptime_s, spend.spend) == (0.75, None, None)
    assert "uptime unknown" in describe_spend(spend.to_dict())
    assert "spend unknown" in describe_spend(spend.to_dict())


def test_a_single_lambda_record() -> None:
    record = {"provider": "lambda", "phase": "ready", "instance_id": "i1",
              "price_cents_per_hour": 75, "launched_at": NOW - 1800}
    assert record_spend(record, NOW) == {"price_per_hour": 0.75, "uptime_s": 1800.0,
                                         "spend": pytest.approx(0.375)}
    assert describe_spend(record_spend(record, NOW)) == "$0.75/h, up 30 min, $0.38 so far"


def test_a_cluster_shows_each_node_and_the_sum() -> None:
    nodes = [{"index": 1, "instance_id": "a", "launched_at": NOW - 3600},
             {"index": 2, "instance_id": "b", "launched_at": NOW - 1800},
             {"index": 3, "instance_id": None}]  # not launched yet: not billing
    record = {"provider": "lambda", "phase": "loading", "instance_id": "a",
              "price_cents_per_hour": 129, "launched_at": NOW - 3600, "nodes": nodes}
    spend = record_spend(record, NOW)
    assert spend is not None
    assert [n["index"] for n in spend["nodes"]] == [1, 2]
    assert spend["price_per_hour"] == pytest.approx(2.58)
    assert spend["spend"] == pytest.approx(1.29 + 0.645)
    assert spend["uptime_s"] == pytest.approx(3600)


def test_a_cluster_node_of_unknown_launch_makes_the_sum_unknown() -> None:
    nodes = [{"index": 1, "instance_id": "a", "launched_at": NOW - 3600},
             {"index": 2, "instance_id": "b"}]
    record = {"provider": "lambda", "phase": "ready", "instance_id": "a",
              "price_cents_per_hour": 129, "nodes": nodes}
    spend = record_spend(record, NOW)
    assert spend is not None and spend["spend"] is None and spend["uptime_s"] is None
    assert spend["nodes"][0]["spend"] == pytest.approx(1.29)


@pytest.mark.parametrize("record", [
    {"provider": "local", "phase": "ready"},
    {"provider": "ssh", "phase": "ready", "ip": "192.0.2.1"},
    {"provider": "lambda", "phase": "down", "price_cents_per_hour": 75},
    {"provider": "lambda", "phase": "launching", "instance_id": None},
])
def test_nothing_bills_without_a_lambda_instance(record: dict) -> None:
    assert record_spend(record, NOW) is None
    assert describe_spend(None) == "-"
