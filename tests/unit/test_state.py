"""State: atomic 0600 files, resolution of the deployment a command acts on."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from intelligensi_deploy.state import Deployment, StateError, StateStore


def _dep(name: str, **kw: object) -> Deployment:
    return Deployment(name=name, preset="local", provider="local", **kw)


def test_save_is_0600_and_round_trips(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    saved = store.save(_dep("a", instance_id="i-1"))
    mode = stat.S_IMODE(os.stat(store.path("a")).st_mode)
    assert mode == 0o600
    assert store.load("a") == saved
    assert saved.created_at > 0 and saved.updated_at >= saved.created_at


def test_no_temp_files_left(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    for i in range(5):
        store.save(_dep("a", port=8000 + i))
    assert [p.name for p in store.root.iterdir()] == ["a.json"]
    assert store.load("a").port == 8004


def test_resolve_prefers_active_most_recent(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save(_dep("old"))
    store.save(_dep("new"))
    assert store.resolve(None).name == "new"
    store.save(_dep("new", phase="down"))
    assert store.resolve(None).name == "old"


def test_resolve_errors_name_the_fix(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    with pytest.raises(StateError, match="fluxdeploy up"):
        store.resolve(None)
    store.save(_dep("a"))
    with pytest.raises(StateError, match="known: a"):
        store.resolve("b")


def test_env_var_sets_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXDEPLOY_HOME", str(tmp_path / "h"))
    store = StateStore()
    store.save(_dep("x"))
    assert (tmp_path / "h" / "deployments" / "x.json").is_file()
