"""A resumed `up` keeps what it did not change (issue 22 part 5): the recorded image tag of a
bundled deployment, the build settings it was built with (unless a flag, a variable or the
preset now says otherwise), and a stopped container whose configuration still matches is
started, not rebuilt or replaced."""

from __future__ import annotations

from pathlib import Path

from intelligensi_deploy.bundle.settings import BuildSettings, record_of, resolve, resume
from intelligensi_deploy.container_plan import ContainerAction, ContainerFacts, plan_container
from intelligensi_deploy.deploy.dispatch import _tracker, new_deployment
from intelligensi_deploy.deploy.steps import build_settings
from intelligensi_deploy.presets import parse_preset
from intelligensi_deploy.state import StateStore

LOCAL = ("provider: local\nimage: bundled\nbuild: {base_image: debian:bookworm-slim, "
         "torch: torch==2.13.0+cpu, extras: []}\n")
# what `make demo` passed as FLUXDEPLOY_BUILD_* (NOTES: offline, the local base and wheel)
DEMO_ENV = {"FLUXDEPLOY_BUILD_BASE_IMAGE": "fluxdeploy/base-cpu:bookworm",
            "FLUXDEPLOY_BUILD_TORCH": "torch==2.13.0"}


class UI:
    def step(self, message: str) -> None:
        pass

    detail = warn = progress_line = step


def first_up_record() -> dict[str, object]:
    preset = parse_preset(LOCAL, "local.yaml")
    built = resolve(preset.build, {}, DEMO_ENV)
    return record_of(preset.build, built)


def test_an_up_without_the_first_ups_variables_builds_the_same_settings() -> None:
    preset = parse_preset(LOCAL, "local.yaml")
    again = build_settings(preset, None, {}, first_up_record())
    assert again is not None
    assert again.base_image == "fluxdeploy/base-cpu:bookworm"
    assert again.torch == "torch==2.13.0"
    assert build_settings(preset, None, {}, None) == preset.build  # a new deployment: preset


def test_a_flag_or_a_variable_of_this_up_still_wins() -> None:
    preset = parse_preset(LOCAL, "local.yaml")
    flagged = build_settings(preset, {"torch": "torch==2.14.0"}, {}, first_up_record())
    assert flagged is not None and flagged.torch == "torch==2.14.0"
    assert flagged.base_image == "fluxdeploy/base-cpu:bookworm"  # the rest as recorded
    env = build_settings(preset, None, {"FLUXDEPLOY_BUILD_BASE_IMAGE": "other:1"},
                         first_up_record())
    assert env is not None and env.base_image == "other:1"


def test_a_preset_edit_wins_for_the_key_it_changed() -> None:
    edited = parse_preset(LOCAL.replace("debian:bookworm-slim", "ubuntu:24.04"), "local.yaml")
    again = resume(edited.build, first_up_record())
    assert again.base_image == "ubuntu:24.04"  # the preset changed it: the preset's
    assert again.torch == "torch==2.13.0"      # unchanged in the preset: as built


def test_a_record_of_another_shape_leaves_the_preset_alone() -> None:
    preset = BuildSettings()
    assert resume(preset, {"resolved": {"extras": "not a list"}, "preset": {}}) == preset
    assert resume(preset, None) == preset


def test_a_stopped_container_with_the_same_configuration_is_started() -> None:
    stopped = ContainerFacts(running=False, restarting=False, config_hash="h1", exit_code=0)
    assert plan_container(stopped, "h1", None, False) is ContainerAction.START
    by_signal = ContainerFacts(running=False, restarting=False, config_hash="h1", exit_code=143)
    assert plan_container(by_signal, "h1", None, False) is ContainerAction.START
    assert plan_container(stopped, "h2", None, False) is ContainerAction.REPLACE  # changed
    assert plan_container(stopped, "h1", None, True) is ContainerAction.REPLACE   # --force
    crashed = ContainerFacts(running=False, restarting=False, config_hash="h1", exit_code=1)
    assert plan_container(crashed, "h1", None, False) is ContainerAction.REPLACE


def test_resuming_keeps_the_recorded_tag_of_a_bundled_image(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    preset = parse_preset(LOCAL, "local.yaml")
    dep = new_deployment(preset, "demo", None, "local")
    store.save(dep.model_copy(update={"phase": "ready", "container_name": "fluxdeploy-demo",
                                      "image": "fluxdeploy/flux-server:a114c0ffee00",
                                      "build_settings": first_up_record()}))
    tracker = _tracker(preset, "demo", store, UI(), force=False, preset_ref="local",
                       ssh_host=None)
    assert tracker.dep.image == "fluxdeploy/flux-server:a114c0ffee00"
    assert tracker.dep.build_settings == first_up_record()
    registry = parse_preset("provider: local\nimage: ghcr.io/x/flux:2\n", "r.yaml")
    moved = _tracker(registry, "demo", store, UI(), force=True, preset_ref="local",
                     ssh_host=None)
    assert moved.dep.image == "ghcr.io/x/flux:2"  # a preset that names an image: that one
