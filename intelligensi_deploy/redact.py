"""Hide secrets in text before it is printed: token shapes and the values of token variables.

`redact` replaces anything shaped like a Hugging Face, GitHub or Lambda Cloud token, the values
of the token environment variables that are set, and any `extra` values, with ``***``. Values
shorter than `MIN_SECRET_LENGTH` are left alone: replacing "1" or "abc" everywhere would mangle
ordinary text and protect nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

MASK = "***"
MIN_SECRET_LENGTH = 8
TOKEN_ENV_NAMES = (
    "HF_TOKEN",
    "HUGGINGFACEHUB_API_TOKEN",
    "HUGGINGFACE_TOKEN",
    "GHCR_TOKEN",
    "LAMBDA_API_KEY",
    "FLUXDEPLOY_API_KEY",
)

# Each shape needs a run of secret-looking characters after its prefix, so that words such as
# "hf_hub_download", "secret_key" or "ghp_" alone are never touched.
_TOKEN_SHAPES = re.compile(
    r"""
    (?<![A-Za-z0-9_])
    (?:
        hf_[A-Za-z0-9]{20,}                   # Hugging Face user/org tokens
      | api_org_[A-Za-z0-9]{20,}              # Hugging Face legacy org tokens
      | gh[pousr]_[A-Za-z0-9]{20,}            # GitHub classic/OAuth/app tokens (ghcr.io too)
      | github_pat_[A-Za-z0-9_]{22,}          # GitHub fine-grained tokens
      | secret_[A-Za-z0-9_-]*[A-Za-z0-9]{16,}[A-Za-z0-9._-]*  # Lambda Cloud API keys
      | fxk_[A-Za-z0-9_-]{32,}                # the server API keys fluxdeploy creates
    )
    """,
    re.VERBOSE,
)


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of the token variables set in `environ` (default: this process's)."""
    env = os.environ if environ is None else environ
    return [env[name].strip() for name in TOKEN_ENV_NAMES if env.get(name, "").strip()]


def redact(text: str, extra: Iterable[str] = (), *,
           environ: Mapping[str, str] | None = None) -> str:
    """`text` with token shapes, token variable values and `extra` values replaced by ``***``."""
    if not text:
        return text
    values = {v for v in (*secret_values(environ), *(e.strip() for e in extra if e))
              if len(v) >= MIN_SECRET_LENGTH}
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, MASK)
    return _TOKEN_SHAPES.sub(MASK, text)
