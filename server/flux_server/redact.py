"""Keep tokens out of logs and responses."""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Iterable

_TOKEN_PATTERN = re.compile(r"\b(hf_|ghp_|github_pat_|secret_)[A-Za-z0-9_]{6,}")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with known secret values and token-shaped strings replaced by ***."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _TOKEN_PATTERN.sub("***", text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's final message."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self.secrets)
        if record.exc_info:
            clean += "\n" + redact("".join(traceback.format_exception(*record.exc_info)),
                                   self.secrets).rstrip()
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = clean, ()
        return True
