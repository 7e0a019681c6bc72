"""diagnose() on real model-load failures (tests/fixtures/load_runs.py made them with the
installed diffusers / requests; tests/test_load_texts.py makes them again and diagnoses them
fresh): each must come out as the finding that names the fix, never as container-crash."""

from __future__ import annotations

from pathlib import Path

from intelligensi_deploy.diagnosis.diagnose import diagnose
from intelligensi_deploy.diagnosis.findings import Finding

TEXTS = Path(__file__).resolve().parents[1] / "fixtures" / "load_texts"


def text(name: str) -> str:
    return (TEXTS / f"{name}.log").read_text()


def the_one(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, [(f.id, f.evidence) for f in findings]
    return findings[0]


def test_diffusers_refusing_device_map_auto() -> None:
    found = the_one(diagnose(text("device_map_auto")))
    assert found.id == "device-map-auto"
    assert found.evidence[0].startswith("NotImplementedError: auto not supported.")
    assert "balanced" in found.fix


def test_the_short_form_of_the_device_map_error() -> None:
    for line in ("NotImplementedError: auto not supported",
                 ("ERROR flux_server.loader model load failed: model=x type=NotImplementedError"
                  " message=auto not supported hint=unset FLUX_DEVICE_MAP")):
        assert the_one(diagnose(line)).id == "device-map-auto", line


def test_a_requests_connection_error_to_the_hub_is_hf_unreachable() -> None:
    found = the_one(diagnose(text("hub_connection_refused")))
    assert found.id == "hf-unreachable"
    assert found.evidence[0].startswith(
        "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='huggingface.co'")
    line = ("requests.exceptions.ConnectionError: HTTPSConnectionPool(host='huggingface.co', "
            "port=443): Max retries exceeded with url: /api/models/black-forest-labs/FLUX.1-dev "
            "(Caused by NameResolutionError(\"HTTPSConnection(host='huggingface.co', port=443): "
            "Failed to resolve 'huggingface.co' ([Errno -2] Name or service not known)\"))")
    assert the_one(diagnose(line)).id == "hf-unreachable"
    cdn = ("urllib3.exceptions.ReadTimeoutError: HTTPSConnectionPool(host='cdn-lfs-us-1.hf.co', "
           "port=443): Read timed out. (read timeout=10)")
    assert the_one(diagnose(cdn)).id == "hf-unreachable"


def test_the_same_error_to_another_host_is_not_the_hub() -> None:
    other = text("hub_connection_refused").replace("huggingface.co", "loras.example.com")
    found = the_one(diagnose(other))
    assert found.id == "container-crash"
    assert "loras.example.com" in found.evidence[0]
