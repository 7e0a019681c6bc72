"""Idle and lifetime limits (issue 16, point 4): how they are written, refused, resolved and
said, the watchdog container they put on the VM, and what `status` says of them."""

from __future__ import annotations

import dataclasses

import pytest

from intelligensi_deploy.deploy.cluster_up import cluster_watch_plan
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.limits_view import OUTSIDE, deadline, ended_by
from intelligensi_deploy.preset_limits import LimitsSection, parse_duration, resolve_limits
from intelligensi_deploy.preset_paths import PresetError
from intelligensi_deploy.presets import load_preset, parse_preset
from intelligensi_deploy.secrets import Token
from intelligensi_deploy.state import Deployment, NodeRecord
from intelligensi_deploy.watchdog_plan import WatchPlan, watchdog_env_file, watchdog_run_args

LAMBDA = ("provider: lambda\nlambda: {instance_type: gpu_1x_a10, ssh_key_name: k}\n"
          "ready_timeout: 600\n")


@pytest.mark.parametrize(("text", "seconds"), [
    ("45m", 2700), ("2h", 7200), ("1h30m", 5400), ("20s", 20), ("1h0m5s", 3605),
    (" 90M ", 5400), ("off", None), ("OFF", None), (None, None),
])
def test_durations(text: str | None, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "1.5h", "m", "2 hours", "0m", "-5m", "30x"])
def test_bad_durations_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match="45m|positive"):
        parse_duration(text)


def test_the_shipped_lambda_presets_stop_after_an_hour_idle() -> None:
    for name in ("lambda-a10", "lambda-a100", "lambda-h100", "lambda-2x-a100",
                 "lambda-3x-a100", "lambda-8x-a100"):
        limits = load_preset(name).limits
        assert (limits.idle, limits.max_duration) == (3600, None), name
    assert not load_preset("local").limits.any and not load_preset("ssh").limits.any


@pytest.mark.parametrize(("body", "words"), [
    ("limits: {idle: 5}\n", ["limits.idle", "has no unit", "45m"]),
    ("limits: {idle: soon}\n", ["limits.idle", "not a duration"]),
    ("limits: {max_duration: 5m}\n", ["max_duration 5 min is shorter than ready_timeout"]),
    ("limits: {idle: 30m, forever: 1h}\n", ["limits.forever", "unknown field"]),
])
def test_bad_limits_name_the_file_the_field_and_the_fix(body: str, words: list[str]) -> None:
    with pytest.raises(PresetError) as info:
        parse_preset(LAMBDA + body, source="mine.yaml")
    assert "mine.yaml" in info.value.message
    for word in words:
        assert word in info.value.message


def test_limits_are_refused_where_there_is_nothing_to_terminate() -> None:
    with pytest.raises(PresetError, match="provider 'ssh' has none to terminate"):
        parse_preset("provider: ssh\nssh: {host: 192.0.2.1}\nlimits: {idle: 30m}\n",
                     source="mine.yaml")


def test_flag_beats_variable_beats_preset_and_off_disables() -> None:
    preset = LimitsSection.of(idle=3600)
    env = {"FLUXDEPLOY_LIMIT_IDLE": "30m", "FLUXDEPLOY_LIMIT_MAX": "8h"}

    def resolve(flags: dict, environ: dict) -> LimitsSection:
        return resolve_limits(preset, flags, environ, provider="lambda", ready_timeout=600)

    assert resolve({}, {}).idle == 3600
    assert (resolve({}, env).idle, resolve({}, env).max_duration) == (1800, 8 * 3600)
    assert resolve({"idle": "20s"}, env).idle == 20
    assert resolve({"idle": "off"}, env).idle is None
    assert not resolve({"idle": "off", "max_duration": "off"}, env).any
    with pytest.raises(FluxdeployError, match="--limit-idle: 'soon' is not a duration"):
        resolve({"idle": "soon"}, {})
    with pytest.raises(FluxdeployError, match="FLUXDEPLOY_LIMIT_MAX: "):
        resolve({}, {"FLUXDEPLOY_LIMIT_MAX": "5"})
    with pytest.raises(FluxdeployError, match="shorter than ready_timeout"):
        resolve({"max_duration": "5m"}, {})


def test_the_price_line_says_what_ends_it_and_how_to_keep_it() -> None:
    assert LimitsSection.of(idle=3600).describe() == (
        "terminates after 60 min idle; `--limit-idle off` to keep it")
    both = LimitsSection.of(idle=1800, max_duration=8 * 3600).describe()
    assert "after 30 min idle or 8 h 00 min after launch" in both and "--limit-max off" in both
    assert "bills until `fluxdeploy down`" in LimitsSection.of().describe()


def test_presets_show_writes_limits_back_as_durations() -> None:
    dumped = load_preset("lambda-a10").model_dump(by_alias=True, mode="json")["limits"]
    assert dumped == {"idle": "1h", "max_duration": "off"}
    again = parse_preset(LAMBDA + "limits: {idle: 1h, max_duration: 'off'}\n", source="a.yaml")
    assert again.limits.idle == 3600


# ---------------------------------------------------------------- the watchdog container


def _plan(**fields: object) -> WatchPlan:
    base = WatchPlan(deployment="gpu", image="fluxdeploy/flux-server:abc", port=8000,
                     limits=LimitsSection.of(idle=20), launched_at=1000.0,
                     instances=("i1", "i2"), rules=("fluxdeploy gpu",), api_url=None)
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]  # test overrides


def test_the_watchdog_runs_beside_the_server_with_no_secret_on_its_command_line() -> None:
    key = Token("LAMBDA_API_KEY", "secret_lambda-key_0123456789")
    args = watchdog_run_args(_plan(), "/home/u/.fluxdeploy/gpu-watchdog.env")
    assert args[:4] == ["run", "-d", "--name", "fluxdeploy-gpu-watchdog"]
    assert ["--restart", "unless-stopped"] == args[4:6] and "--network" in args
    assert args[-4:] == ["fluxdeploy/flux-server:abc", "python", "-m", "flux_server.watchdog"]
    assert "FLUXDEPLOY_WATCH_IDLE_S=20" in args and "FLUXDEPLOY_WATCH_INSTANCES=i1,i2" in args
    assert key.value not in " ".join(args)
    assert watchdog_env_file(key) == b"LAMBDA_API_KEY=secret_lambda-key_0123456789\n"


def test_a_changed_limit_or_node_list_changes_the_watchdogs_config_label() -> None:
    def label(plan: WatchPlan) -> str:
        return next(a for a in watchdog_run_args(plan, "/e") if a.startswith("fluxdeploy.config="))

    assert label(_plan()) == label(_plan())
    assert label(_plan()) != label(_plan(limits=LimitsSection.of(idle=30)))
    assert label(_plan()) != label(_plan(instances=("i1",)))


# ---------------------------------------------------------------- what status says


def test_the_deadline_counts_down_and_a_request_in_progress_holds_it() -> None:
    idle = deadline(1200, None, 1000.0, {"idle_s": 500.0, "in_flight": 0}, 2000.0)
    assert idle is not None and idle["idle_remaining_s"] == 700
    assert idle["text"] == "terminates in 11 min if idle"
    busy = deadline(1200, None, 1000.0, {"idle_s": 0.0, "in_flight": 2}, 2000.0)
    assert busy is not None and busy["text"] == "not idle: a request is in progress"
    both = deadline(None, 3600, 1000.0, None, 2000.0)
    assert both is not None and both["max_remaining_s"] == 2600
    assert "(max_duration)" in both["text"]
    assert deadline(None, None, 1000.0, None, 2000.0) is None


def test_why_it_went_down_comes_from_the_watchdogs_line() -> None:
    log = ("fluxdeploy-watchdog: watching deployment gpu: idle limit 20 s\n"
           "fluxdeploy-watchdog: limit reached: idle: no generation request for 21 s >= idle "
           "limit 20 s (1 request(s) since start); terminating deployment gpu (i1)\n"
           "fluxdeploy-watchdog: terminated i1: billing stops\n")
    reason, line = ended_by(log)
    assert reason == "idle" and line is not None and "21 s" in line
    assert ended_by(None) == (OUTSIDE, None)


def test_a_clusters_watchdog_ends_every_node_and_every_rule_of_it() -> None:
    nodes = [NodeRecord(index=i, name=f"fluxdeploy-trio-node{i}", instance_id=f"i{i}",
                        ip=f"10.0.0.{i}", launched_at=1000.0 + i) for i in (1, 2, 3)]
    dep = Deployment(name="trio", preset="lambda-3x-a100", provider="lambda", port=8000,
                     image="fluxdeploy/flux-server:abc", nodes=nodes,
                     ray_rule_ips=["10.0.0.1", "10.0.0.2", "10.0.0.3"],
                     firewall_rule={"protocol": "tcp", "port_range": [8000, 8000],
                                    "source_network": "0.0.0.0/0",
                                    "description": "fluxdeploy trio"})
    plan = cluster_watch_plan(dep, LimitsSection.of(idle=3600), {})
    assert plan.instances == ("i1", "i2", "i3") and plan.launched_at == 1001.0
    assert plan.rules == ("fluxdeploy ray trio node 10.0.0.1", "fluxdeploy ray trio node 10.0.0.2",
                          "fluxdeploy ray trio node 10.0.0.3", "fluxdeploy trio")
