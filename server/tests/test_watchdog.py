"""The watchdog that enforces a deployment's limits on the VM (issue 16, point 5), against
the fake Lambda API (a real HTTP server checked against Lambda's OpenAPI file): the decision,
the termination of every instance with the deployment's firewall rules, and its retries when
the key is revoked or the API is down. The whole path (`up` with `limits.idle: 20s`, a
generation, then nothing) runs in tests/e2e/test_e2e_limits.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from flux_server.watchdog import (
    ApiError,
    WatchSettings,
    call_api,
    end_deployment,
    expiry,
    watch,
)

from tests.fakes.fake_lambda import FakeLambda

KEY = "secret_watchdog-key_0123456789abcdef"
RAY = "fluxdeploy ray trio node 10.0.0.1"
PUBLIC = "fluxdeploy trio"
OTHER = "someone else's rule"


def _settings(**fields: Any) -> WatchSettings:
    base = WatchSettings(name="trio", port=1, idle_s=20.0, max_s=None, launched_at=1000.0,
                         instances=(), rules=(RAY, PUBLIC), interval_s=2.0, api_key=KEY)
    return dataclasses.replace(base, **fields)


@pytest.mark.parametrize(("now", "activity", "reason"), [
    (1010.0, {"idle_s": 19.9, "in_flight": 0}, None),
    (1010.0, {"idle_s": 20.0, "in_flight": 0, "requests": 1}, "idle"),
    (1010.0, {"idle_s": 500.0, "in_flight": 1}, None),  # a request in progress is not idle
    (1010.0, {"idle_s": None, "in_flight": 0}, None),  # still loading: the idle clock waits
    (1010.0, None, None),  # the server did not answer: never taken for idle
])
def test_idle_needs_the_servers_word(now: float, activity: Any, reason: str | None) -> None:
    found = expiry(_settings(), now, activity)
    assert (found.reason if found else None) == reason


def test_max_duration_needs_only_the_clock() -> None:
    settings = _settings(idle_s=None, max_s=3600.0)
    assert expiry(settings, 1000.0 + 3599, None) is None
    found = expiry(settings, 1000.0 + 3600, {"idle_s": 0.0, "in_flight": 1})
    assert found is not None and found.reason == "max_duration" and "3600 s" in found.detail


@pytest.fixture
def lam() -> Iterator[FakeLambda]:
    with FakeLambda(api_key=KEY, capacity={"gpu_1x_a100": ["us-east-1"]},
                    launch_interval_s=0.0) as fake:
        fake.add_ssh_key("k")
        yield fake
        assert fake.violations == []


def _cluster(lam: FakeLambda) -> WatchSettings:
    """Three running instances and the account's rules: the cluster's two and another."""
    settings = _settings(api_url=lam.url)
    ids = tuple(call_api(settings, "POST", "/instance-operations/launch", {
        "region_name": "us-east-1", "instance_type_name": "gpu_1x_a100",
        "ssh_key_names": ["k"]})["instance_ids"][0] for _ in range(3))
    lam.firewall_rules[:] = [
        {"protocol": "tcp", "port_range": [6379, 6479], "source_network": "10.0.0.1/32",
         "description": RAY},
        {"protocol": "tcp", "port_range": [8000, 8000], "source_network": "0.0.0.0/0",
         "description": PUBLIC},
        {"protocol": "tcp", "port_range": [443, 443], "source_network": "0.0.0.0/0",
         "description": OTHER}]
    return dataclasses.replace(settings, instances=ids)


def test_a_cluster_is_ended_whole_rules_first(lam: FakeLambda) -> None:
    settings, lines = _cluster(lam), []
    end_deployment(settings, lines.append, sleep=lambda s: None)
    assert [r["description"] for r in lam.firewall_rules] == [OTHER]
    assert all(lam.instances[i].forced_status == "terminated" for i in settings.instances)
    order = [(c.method, c.path) for c in lam.calls() if c.method in ("PUT", "POST")][-2:]
    assert order == [("PUT", "/api/v1/firewall-rules"),
                     ("POST", "/api/v1/instance-operations/terminate")]
    assert "billing stops" in lines[-1]


def test_a_revoked_key_is_logged_and_retried_with_back_off(lam: FakeLambda) -> None:
    settings, lines, sleeps = _cluster(lam), [], []
    revoked = dataclasses.replace(settings, api_key="secret_revoked-key_00000000000000")
    tries = iter([revoked] * 3)

    def api(_settings: WatchSettings, *args: Any) -> Any:
        return call_api(next(tries, settings), *args)  # the key works again after 3 tries

    end_deployment(settings, lines.append, sleep=sleeps.append, api=api)
    assert sleeps == [5.0, 10.0, 20.0]
    assert sum("HTTP 401" in line and "revoked" in line for line in lines) == 3
    assert all(lam.instances[i].forced_status == "terminated" for i in settings.instances)
    assert not any(settings.api_key in line or revoked.api_key in line for line in lines)


def test_the_api_down_at_the_deadline_is_retried_until_it_answers(lam: FakeLambda) -> None:
    settings, lines, sleeps = _cluster(lam), [], []
    lam.fail_next("/instance-operations/terminate", 4, status=503)
    end_deployment(settings, lines.append, sleep=sleeps.append)
    assert len(sleeps) == 4 and all("HTTP 503" in line for line in lines[1:5])
    assert all(lam.instances[i].forced_status == "terminated" for i in settings.instances)


def test_an_instance_already_gone_does_not_keep_the_others_billing(lam: FakeLambda) -> None:
    settings = _cluster(lam)
    settings = dataclasses.replace(settings, instances=(*settings.instances, "0" * 32))
    end_deployment(settings, [].append, sleep=lambda s: None)
    assert all(lam.instances[i].forced_status == "terminated" for i in settings.instances[:3])


def test_the_loop_waits_out_a_long_request_then_ends_it(lam: FakeLambda) -> None:
    settings, lines = _cluster(lam), []
    now = [1000.0]
    answers = iter([{"idle_s": 5.0, "in_flight": 0}, {"idle_s": 0.0, "in_flight": 1},
                    {"idle_s": 0.0, "in_flight": 1}, {"idle_s": 12.0, "in_flight": 0},
                    {"idle_s": 21.0, "in_flight": 0, "requests": 1}])

    def sleep(seconds: float) -> None:
        now[0] += seconds

    found = watch(settings, lines.append, clock=lambda: now[0], sleep=sleep,
                  activity=lambda s: next(answers))
    assert found.reason == "idle" and now[0] == 1008.0  # four intervals, then the end
    assert lines[0].startswith("fluxdeploy-watchdog: watching deployment trio")
    assert "limit reached: idle" in lines[1]
    assert all(lam.instances[i].forced_status == "terminated" for i in settings.instances)


def test_an_api_error_never_carries_the_key() -> None:
    settings = _settings(api_url="http://127.0.0.1:9/api/v1")  # nothing listens there
    with pytest.raises(ApiError) as info:
        call_api(settings, "GET", "/instances", timeout=2)
    assert info.value.status == 0 and KEY not in str(info.value)


def _with_ruleset(lam: FakeLambda) -> WatchSettings:
    """One instance launched with the deployment's ruleset (a newer record: no legacy rules)."""
    settings = _settings(api_url=lam.url, rules=())
    ruleset = call_api(settings, "POST", "/firewall-rulesets", {
        "name": "fluxdeploy-trio", "region": "us-east-1", "rules": []})["id"]
    instance = call_api(settings, "POST", "/instance-operations/launch", {
        "region_name": "us-east-1", "instance_type_name": "gpu_1x_a100", "ssh_key_names": ["k"],
        "firewall_rulesets": [{"id": ruleset}]})["instance_ids"][0]
    return dataclasses.replace(settings, instances=(instance,), ruleset=ruleset)


def test_the_ruleset_is_deleted_after_the_instances_are_terminated(lam: FakeLambda) -> None:
    settings, lines = _with_ruleset(lam), []
    rules_before = list(lam.firewall_rules)
    end_deployment(settings, lines.append, sleep=lambda s: None)
    assert lam.rulesets.rulesets == {} and lam.firewall_rules == rules_before
    order = [(c.method, c.path) for c in lam.calls() if c.method in ("DELETE", "POST")][-2:]
    assert order == [("POST", "/api/v1/instance-operations/terminate"),
                     ("DELETE", f"/api/v1/firewall-rulesets/{settings.ruleset}")]
    assert lines[-1].endswith(f"deleted firewall ruleset {settings.ruleset}")


def test_a_ruleset_in_use_is_asked_again_then_left_to_down(lam: FakeLambda) -> None:
    settings, lines, sleeps = _with_ruleset(lam), [], []
    lam.rulesets.in_use_refusals = 2  # the instance is still terminating
    end_deployment(settings, lines.append, sleep=sleeps.append)
    assert lam.rulesets.rulesets == {} and sleeps == [10.0, 10.0]
    assert sum("an instance still terminates" in line for line in lines) == 2

    settings, lines = _with_ruleset(lam), []
    lam.rulesets.in_use_refusals = 99
    end_deployment(settings, lines.append, sleep=lambda s: None)
    assert settings.ruleset in lam.rulesets.rulesets
    assert "`fluxdeploy down` deletes it" in lines[-1]
    assert all(lam.instances[i].forced_status == "terminated" for i in settings.instances)


def test_the_ruleset_comes_from_the_environment() -> None:
    env = {"LAMBDA_API_KEY": KEY, "FLUXDEPLOY_WATCH_RULESET": "rs1"}
    assert WatchSettings.from_env(env).ruleset == "rs1"
    assert WatchSettings.from_env({"LAMBDA_API_KEY": KEY}).ruleset == ""
