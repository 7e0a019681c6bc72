"""API keys on the laptop side: the preset's `auth`, the container's secrets mount, the key
file beside the record, and that the key's shape is masked wherever it is printed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from intelligensi_deploy import api_keys, names
from intelligensi_deploy.cli import app
from intelligensi_deploy.container_plan import container_spec
from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.presets import PresetError, parse_preset
from intelligensi_deploy.redact import redact
from intelligensi_deploy.remote.docker_args import run_args
from intelligensi_deploy.state import Deployment, StateStore

SSH = "provider: ssh\nimage: ghcr.io/o/flux:1\n"


def test_public_exposure_turns_keys_on_and_tunnel_leaves_them_off() -> None:
    assert parse_preset(SSH + "exposure: public\n", source="p.yaml").auth_on
    assert not parse_preset(SSH, source="p.yaml").auth_on
    assert parse_preset(SSH + "auth: true\n", source="p.yaml").auth_on


def test_public_without_auth_is_refused_with_the_reason() -> None:
    with pytest.raises(PresetError) as caught:
        parse_preset(SSH + "exposure: public\nauth: false\n", source="p.yaml")
    text = str(caught.value)
    assert "auth: false" in text and "drive your GPU" in text and "exposure: tunnel" in text


def test_the_server_finds_its_keys_in_the_read_only_secrets_volume() -> None:
    preset = parse_preset(SSH + "exposure: public\n", source="p.yaml")
    spec = container_spec(preset, "web", "/home/u/.fluxdeploy/web.env", None)
    assert spec.env["FLUX_API_KEYS_FILE"] == "/run/fluxdeploy/api-keys"
    assert ("fluxdeploy-web-secrets", "/run/fluxdeploy:ro") in spec.volumes
    argv = run_args(spec)
    assert "fluxdeploy-web-secrets:/run/fluxdeploy:ro" in argv
    tunnel = container_spec(parse_preset(SSH, source="p.yaml"), "web", None, None)
    assert "FLUX_API_KEYS_FILE" not in tunnel.env and len(tunnel.volumes) == 1


def test_turning_auth_on_changes_the_configuration_digest() -> None:
    off = container_spec(parse_preset(SSH, source="p.yaml"), "web", None, None)
    on = container_spec(parse_preset(SSH + "auth: true\n", source="p.yaml"), "web", None, None)
    assert off.labels[names.CONFIG_LABEL] != on.labels[names.CONFIG_LABEL]


def test_key_is_created_once_0600_beside_the_record_and_kept(tmp_path: Path) -> None:
    first = api_keys.ensure_key(tmp_path, "web")
    path = api_keys.key_path(tmp_path, "web")
    assert path == tmp_path / "web.api-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.value.startswith("fxk_") and len(first.value) == 4 + 43
    assert api_keys.ensure_key(tmp_path, "web") == first  # a redeploy keeps the clients' key
    assert api_keys.new_key() != api_keys.new_key()
    assert first.value not in repr(first)


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    api_keys.ensure_key(tmp_path, "web")
    api_keys.key_path(tmp_path, "web").chmod(0o644)
    with pytest.raises(FluxdeployError, match="chmod 600") as caught:
        api_keys.load_key(tmp_path, "web")
    assert "key rotate" in (caught.value.fix or "")


def test_a_client_of_a_keyed_deployment_without_a_key_is_told_what_to_do(tmp_path: Path) -> None:
    assert api_keys.client_key(tmp_path, "web", auth=False) is None
    with pytest.raises(FluxdeployError, match="holds none") as caught:
        api_keys.client_key(tmp_path, "web", auth=True)
    assert "key rotate" in (caught.value.fix or "")


def test_the_key_shape_is_masked_in_anything_printed() -> None:
    key = api_keys.new_key()
    assert redact(f"Authorization: Bearer {key} done") == "Authorization: Bearer *** done"


def _keyed_record(home: Path) -> StateStore:
    store = StateStore(home)
    store.save(Deployment(name="web", preset="p", provider="ssh", phase="ready", ip="192.0.2.1",
                          auth=True, exposure="public"))
    return store


def test_key_show_prints_only_to_a_terminal_unless_revealed(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setenv("FLUXDEPLOY_HOME", str(tmp_path))
    store = _keyed_record(tmp_path)
    key = api_keys.ensure_key(store.root, "web")
    refused = CliRunner().invoke(app, ["key", "show", "--name", "web"])
    assert refused.exit_code == 1 and key.value not in refused.output
    assert "--reveal" in refused.output
    shown = CliRunner().invoke(app, ["key", "show", "--name", "web", "--reveal"])
    assert shown.exit_code == 0 and shown.stdout.strip() == key.value


def test_key_commands_refuse_a_deployment_without_keys(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXDEPLOY_HOME", str(tmp_path))
    StateStore(tmp_path).save(Deployment(name="t", preset="p", provider="ssh", phase="ready",
                                         ip="192.0.2.1"))
    for command in (["key", "show", "--reveal"], ["key", "rotate"]):
        result = CliRunner().invoke(app, [*command, "--name", "t"])
        error = result.exception  # cli.main prints it with its fix and exits 1
        assert isinstance(error, FluxdeployError), result.output
        assert "without API keys" in error.message and "auth: true" in (error.fix or "")
