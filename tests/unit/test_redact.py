"""redact(): token shapes and token variable values become ***, ordinary text stays intact."""

from __future__ import annotations

import pytest

from intelligensi_deploy.redact import MASK, redact, secret_values

HF = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz012345"
GHP = "ghp_" + "0123456789abcdefghijABCDEFGHIJ012345"
GHO = "gho_" + "0123456789abcdefghijABCDEFGHIJ012345"
GHS = "ghs_" + "0123456789abcdefghijABCDEFGHIJ012345"
PAT = "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
LAMBDA = ("secret_fluxdeploy-laptop_" + "0123456789abcdef0123456789abcdef"
          + ".ABCDEFGHIJKLMNOPQRSTUVWXYZ123456")


@pytest.mark.parametrize("token", [HF, GHP, GHO, GHS, PAT, LAMBDA])
def test_token_shapes_are_masked_wherever_they_appear(token: str) -> None:
    text = f"Authorization: Bearer {token}\nurl=https://x/?t={token}&a=1 '{token}'"
    out = redact(text, environ={})
    assert token not in out
    assert out.count(MASK) == 3
    assert out.startswith("Authorization: Bearer ***\n")


@pytest.mark.parametrize("text", [
    "hf_hub_download failed", "from huggingface_hub import hf_hub_url",
    "secret_key = None", "the ghp_ prefix", "github_pat_ tokens are fine-grained",
    "HF_TOKEN is not set", "state=downloading bytes_done=123456789",
    "Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)",
    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
])
def test_ordinary_words_and_hashes_are_left_alone(text: str) -> None:
    assert redact(text, environ={}) == text


def test_values_of_token_variables_are_masked_whatever_their_shape() -> None:
    env = {"HF_TOKEN": "not-a-known-shape-123", "GHCR_TOKEN": "ghcr-value-xyz-789",
           "LAMBDA_API_KEY": "lambda-key-value-456", "HUGGINGFACEHUB_API_TOKEN": "alias-val-1",
           "PATH": "/usr/local/bin:/usr/bin"}
    text = ("token not-a-known-shape-123 and ghcr-value-xyz-789 and lambda-key-value-456, "
            "alias-val-1, path /usr/local/bin:/usr/bin")
    out = redact(text, environ=env)
    assert out == "token *** and *** and ***, ***, path /usr/local/bin:/usr/bin"


def test_short_or_empty_values_are_not_used_for_masking() -> None:
    env = {"HF_TOKEN": "abc", "GHCR_TOKEN": "", "LAMBDA_API_KEY": "   "}
    text = "abc is the alphabet; nothing else here"
    assert redact(text, environ=env) == text
    assert secret_values(env) == ["abc"]


def test_extra_values_are_masked_and_short_extras_ignored() -> None:
    out = redact("password s3cr3t-passw0rd and x", extra=["s3cr3t-passw0rd", "x", ""],
                 environ={})
    assert out == "password *** and x"


def test_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUGGINGFACE_TOKEN", "process-env-token-42")
    assert redact("got process-env-token-42") == "got ***"


def test_a_longer_secret_containing_a_shorter_one_is_masked_whole() -> None:
    env = {"HF_TOKEN": "abcdefgh12", "GHCR_TOKEN": "abcdefgh12345678"}
    assert redact("x abcdefgh12345678 y", environ=env) == "x *** y"


def test_empty_text() -> None:
    assert redact("", environ={"HF_TOKEN": "whatever-long"}) == ""
