"""Where a LoRA may come from (flux_server.lora_source), on real folders and symlinks: a
path outside FLUX_LORA_DIR gets one answer whether or not it exists, and pickles never pass."""

from __future__ import annotations

import os

import pytest
from flux_server.lora_source import (
    PICKLE,
    HubSource,
    LocalSource,
    LoraProblem,
    choose_weights,
    classify,
    local_weights,
)
from flux_server.schemas import InputError

MAX = 10_000


@pytest.fixture()
def root(tmp_path):
    root = tmp_path / "loras"
    (root / "style").mkdir(parents=True)
    (root / "style" / "pytorch_lora_weights.safetensors").write_bytes(b"x" * 100)
    (root / "one.safetensors").write_bytes(b"x" * 100)
    (root / "pickled").mkdir()
    (root / "pickled" / "pytorch_lora_weights.bin").write_bytes(b"x")
    (tmp_path / "outside.safetensors").write_bytes(b"x" * 100)
    return root


def _refusal(source: str, root, **kw) -> InputError:
    with pytest.raises(InputError) as caught:
        where = classify(source, str(root), ())
        local_weights(where, kw.get("weight_name"), str(root), MAX)
    return caught.value


def test_paths_outside_the_folder_get_one_answer_whether_or_not_they_exist(root, tmp_path):
    os.symlink("/etc/passwd", root / "link.safetensors")
    os.symlink(tmp_path, root / "up")
    answers = {str(_refusal(s, root)) for s in (
        "/etc/shadow", "/etc/passwd", "/etc/no-such-file-at-all", str(tmp_path / "outside.safetensors"),
        "../outside.safetensors", "../../../../etc/passwd", "link.safetensors",
        "./up/outside.safetensors", "./up/nothing-here", str(root) + "/../outside.safetensors")}
    assert len(answers) == 1
    assert "FLUX_LORA_DIR" in answers.pop()


def test_bytes_no_file_system_takes_are_refused_the_same_way(root):
    assert str(_refusal("style\x00.safetensors", root)) == str(_refusal("/etc/shadow", root))
    assert str(_refusal("\udbbc/x", root)) == str(_refusal("/etc/shadow", root))
    with pytest.raises(InputError):
        local_weights(classify("style", str(root), ()), "a\x00.safetensors", str(root), MAX)


def test_a_weight_file_that_links_out_of_the_folder_is_refused_the_same_way(root, tmp_path):
    folder = root / "sneaky"
    folder.mkdir()
    os.symlink(tmp_path / "outside.safetensors", folder / "pytorch_lora_weights.safetensors")
    assert str(_refusal("sneaky", root)) == str(_refusal("/etc/shadow", root))


def test_pickles_are_refused_before_anything_reads_them(root):
    for source, weight_name in (("pickled", None), ("pickled", "pytorch_lora_weights.bin"),
                                ("style", "pytorch_lora_weights.bin"), ("style", "x.pt")):
        error = _refusal(source, root, weight_name=weight_name)
        assert error.rule == PICKLE, (source, weight_name)
    assert _refusal(str(root / "pickled" / "pytorch_lora_weights.bin"), root).rule == PICKLE


def test_files_and_folders_under_the_root_resolve_to_their_safetensors(root):
    assert local_weights(classify("style", str(root), ()), None, str(root), MAX).endswith(
        "style/pytorch_lora_weights.safetensors")
    assert local_weights(classify(str(root / "one.safetensors"), str(root), ()), None,
                         str(root), MAX).endswith("one.safetensors")
    missing = _refusal("nope", root)
    assert "nothing at" in missing.rule and "style" in missing.rule  # the folder's own listing
    with pytest.raises(LoraProblem) as caught:
        local_weights(classify("style", str(root), ()), None, str(root), 50)
    assert caught.value.type == "LoraTooLarge" and "FLUX_LORA_MAX_BYTES=50" in caught.value.message


def test_hub_ids_and_the_allow_list():
    assert classify("owner/name", "/loras", ()) == HubSource("owner/name")
    assert classify("owner/name", "/loras", ("owner/*",)) == HubSource("owner/name")
    assert classify("owner/name", "/loras", ("owner/",)) == HubSource("owner/name")
    with pytest.raises(InputError) as caught:
        classify("owner/name", "/loras", ("someone/else", "other/*"))
    assert "FLUX_LORA_ALLOW" in caught.value.rule
    assert isinstance(classify("0", "/loras", ()), LocalSource)  # a name in FLUX_LORA_DIR


def test_choosing_the_weight_file_of_a_repo():
    assert choose_weights(["README.md", "pytorch_lora_weights.safetensors", "x.bin"], None,
                          "r") == "pytorch_lora_weights.safetensors"
    assert choose_weights(["a/style.safetensors"], None, "r") == "a/style.safetensors"
    with pytest.raises(InputError, match="several"):
        choose_weights(["a.safetensors", "b.safetensors"], None, "r")
    with pytest.raises(InputError) as caught:
        choose_weights(["adapter_model.bin", "README.md"], None, "r")
    assert caught.value.rule == PICKLE
    with pytest.raises(InputError, match="has no file"):
        choose_weights(["a.safetensors"], "b.safetensors", "r")
