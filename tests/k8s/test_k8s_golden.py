"""Golden: every shipped Lambda preset renders to the committed YAML, byte for byte, twice
(sorted keys, no timestamps). After an intended change: FLUXDEPLOY_GOLDEN=update."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from intelligensi_deploy.k8s.render import as_stream
from tests.k8s.helpers import IMAGE, RENDERABLE, render_shipped, shipped

GOLDEN = Path(__file__).parent / "golden"


def _stream(preset: str) -> str:
    loaded, _ = shipped(preset)
    return as_stream(render_shipped(preset), loaded, loaded.name)


@pytest.mark.parametrize("preset", RENDERABLE)
def test_render_matches_golden_and_is_stable(preset: str) -> None:
    text = _stream(preset)
    assert text == _stream(preset)
    path = GOLDEN / f"{preset}.yaml"
    if os.environ.get("FLUXDEPLOY_GOLDEN") == "update":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), "re-render with FLUXDEPLOY_GOLDEN=update"
    assert IMAGE in text


def test_keys_are_sorted_at_every_level() -> None:
    import yaml

    def check(node: object) -> None:
        if isinstance(node, dict):
            assert list(node) == sorted(node)
            for value in node.values():
                check(value)
        elif isinstance(node, list):
            for value in node:
                check(value)

    for preset in RENDERABLE:
        for doc in yaml.safe_load_all(_stream(preset)):
            check(doc)
