"""diagnose() on real model-load failures (tests/fixtures/load_runs.py made them with the
installed diffusers / requests; tests/test_load_texts.py makes them again and diagnoses them
fresh): each must come out as the finding that names the fix, never as container-crash."""

from __future__ import annotations

import re
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


# --------------------------------------------------------------------------- a broken cache

TRANSFORMER = "transformer/diffusion_pytorch_model.safetensors"


def test_safetensors_cut_in_its_data_names_the_file() -> None:
    found = the_one(diagnose(text("truncated_data")))
    assert (found.id, found.severity) == ("cache-corrupt", "error")
    assert found.evidence[0] == ("safetensors._safetensors_rust.SafetensorError: Error while "
                                 "deserializing header: incomplete metadata, file not fully "
                                 "covered")
    assert found.evidence[1].startswith("OSError: Unable to load weights from checkpoint file")
    assert TRANSFORMER in found.evidence[1]


def test_safetensors_cut_in_its_header() -> None:
    found = the_one(diagnose(text("truncated_header")))
    assert found.id == "cache-corrupt"
    assert found.evidence[0].endswith("Error while deserializing header: invalid header length")
    assert TRANSFORMER in found.evidence[1]


def test_a_git_lfs_pointer_in_place_of_the_weights() -> None:
    found = the_one(diagnose(text("lfs_pointer")))
    assert found.id == "cache-corrupt"
    assert found.evidence[0].endswith("header too large")
    assert "git-lfs" in found.evidence[1] and "git lfs pull" in found.fix


def test_a_text_encoder_cut_by_transformers_loading_it() -> None:
    assert the_one(diagnose(text("truncated_text_encoder"))).id == "cache-corrupt"


def test_older_safetensors_words_for_the_same_cuts() -> None:
    for word in ("HeaderTooLarge", "MetadataIncompleteBuffer", "HeaderTooSmall"):
        line = f"safetensors_rust.SafetensorError: Error while deserializing header: {word}"
        assert the_one(diagnose(line)).id == "cache-corrupt", word


def test_the_server_mending_a_truncated_file_is_a_warning_naming_it() -> None:
    found = the_one(diagnose(text("server_mended")))
    assert (found.id, found.severity) == ("cache-corrupt", "warning")
    assert "downloaded again" in found.title
    assert f"cache-corrupt: {TRANSFORMER}: truncated: 147972 of 295944 bytes" in \
        found.evidence[0]


def test_a_hub_copy_that_stays_broken_is_the_error_naming_the_file() -> None:
    found = the_one(diagnose(text("server_hub_copy_broken")))
    assert (found.id, found.severity) == ("cache-corrupt", "error")
    assert found.evidence[0].startswith(
        f"flux_server.cache_check.CacheCorrupt: broken file(s) in the HF cache: {TRANSFORMER}: "
        "truncated: 147972 of 295944 bytes")


def test_an_interrupted_download_with_the_hub_unreachable() -> None:
    findings = diagnose(text("interrupted_offline"))
    assert [(f.id, f.severity) for f in findings] == [("hf-unreachable", "error"),
                                                      ("cache-corrupt", "warning")]
    incomplete = findings[1].evidence[0]
    assert re.search(r"an interrupted download left \d+ \.incomplete file\(s\)", incomplete)
    assert re.search(r"\b[0-9a-f]{40,64}\.[0-9a-f]+\.incomplete \(\d+ bytes\)", incomplete)


def test_a_broken_compile_cache_entry_is_a_warning_with_the_clear_command() -> None:
    found = the_one(diagnose(text("compile_cache_corrupt")))
    assert (found.id, found.severity) == ("cache-corrupt", "warning")
    assert "fluxdeploy cache clear --compiled" in found.title
    assert found.evidence[0].endswith("fx graph cache unable to load compiled graph")


def test_the_servers_refusal_of_a_broken_local_model_folder() -> None:
    line = ("ERROR flux_server.loader model load failed: model=/models/flux type=CacheCorrupt "
            f"message=broken file(s) in the model folder: {TRANSFORMER}: a Git LFS pointer, "
            "not the weights (header too large) (in /models/flux) hint=copy the model again")
    found = the_one(diagnose(line))
    assert (found.id, found.severity) == ("cache-corrupt", "error")
