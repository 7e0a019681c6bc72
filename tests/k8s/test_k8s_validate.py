"""Every rendered core object is valid Kubernetes (offline: kubernetes-validate --strict,
the schemas of 1.30 and 1.33), and the validator does refuse what is wrong."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from tests.k8s.helpers import (
    K8S_VERSIONS,
    RENDERABLE,
    is_core,
    render_shipped,
    validate_core,
)


def _core_manifests():
    for name in RENDERABLE:
        for manifest in render_shipped(name):
            if is_core(manifest):
                yield name, manifest


CASES = [(name, m.filename, version) for name, m in _core_manifests() for version in K8S_VERSIONS]


@pytest.mark.parametrize(("preset", "filename", "version"), CASES)
def test_rendered_core_object_is_valid_strict(preset: str, filename: str, version: str) -> None:
    manifest = next(m for m in render_shipped(preset) if m.filename == filename)
    validate_core(manifest.obj, version)


def test_every_shipped_lambda_preset_has_core_objects_validated() -> None:
    validated = {name for name, _, _ in CASES}
    assert validated == set(RENDERABLE)
    assert len(validated) >= 4


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_validator_refuses_an_unknown_field_and_a_wrong_type(version: str) -> None:
    deployment = next(m.obj for m in render_shipped("lambda-a100") if m.kind == "Deployment")
    unknown = copy.deepcopy(deployment)
    unknown["spec"]["template"]["spec"]["containers"][0]["startupprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_core(unknown, version)
    wrong = copy.deepcopy(deployment)
    wrong["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_core(wrong, version)
