"""The tokens fluxdeploy uses, read from the environment. Only their names are ever shown."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

HF_TOKEN_NAMES = ("HF_TOKEN", "HUGGINGFACEHUB_API_TOKEN", "HUGGINGFACE_TOKEN")
GHCR_TOKEN_NAME = "GHCR_TOKEN"
GHCR_USERNAME_NAME = "GHCR_USERNAME"
LAMBDA_KEY_NAME = "LAMBDA_API_KEY"


@dataclass(frozen=True)
class Token:
    """A secret value and the variable it came from. Its repr never shows the value."""

    name: str
    value: str

    def __repr__(self) -> str:
        return f"Token(name={self.name!r}, value='***')"

    __str__ = __repr__


def _first(names: tuple[str, ...], environ: Mapping[str, str]) -> Token | None:
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return Token(name, value)
    return None


def hf_token(environ: Mapping[str, str] = os.environ) -> Token | None:
    """The Hugging Face token from HF_TOKEN, HUGGINGFACEHUB_API_TOKEN or HUGGINGFACE_TOKEN."""
    return _first(HF_TOKEN_NAMES, environ)


def ghcr_token(environ: Mapping[str, str] = os.environ) -> Token | None:
    return _first((GHCR_TOKEN_NAME,), environ)


def lambda_api_key(environ: Mapping[str, str] = os.environ) -> Token | None:
    """The Lambda Cloud API key (LAMBDA_API_KEY)."""
    return _first((LAMBDA_KEY_NAME,), environ)


def ghcr_username(environ: Mapping[str, str] = os.environ) -> str | None:
    return environ.get(GHCR_USERNAME_NAME, "").strip() or None


def present_token_names(environ: Mapping[str, str] = os.environ) -> list[str]:
    """Names of the token variables that are set (never their values)."""
    names = (*HF_TOKEN_NAMES, GHCR_TOKEN_NAME, LAMBDA_KEY_NAME)
    return [n for n in names if environ.get(n, "").strip()]


def container_env_file(token: Token | None) -> bytes:
    """The body of the 0600 env file the container reads secrets from (`--env-file`)."""
    return f"HF_TOKEN={token.value}\n".encode() if token else b""
