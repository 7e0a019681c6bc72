"""Keep tokens out of logs and responses."""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable, Iterable

# fxk_: the API keys fluxdeploy creates (URL-safe base64, so `-` too)
_TOKEN_PATTERN = re.compile(r"\b(?:(?:hf_|ghp_|github_pat_|secret_)[A-Za-z0-9_]{6,}"
                            r"|fxk_[A-Za-z0-9_-]{16,})")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with known secret values and token-shaped strings replaced by ***."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _TOKEN_PATTERN.sub("***", text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's final message.

    `sources` give secrets that change while the process runs (the API keys, re-read on
    SIGHUP): each is called for every record."""

    def __init__(self, secrets: Iterable[str | None] = (),
                 sources: Iterable[Callable[[], Iterable[str]]] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]
        self.sources = list(sources)

    def current(self) -> list[str]:
        """The fixed secrets and those the sources hold now."""
        found = list(self.secrets)
        for source in self.sources:
            found.extend(source())
        return found

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        secrets = self.current()
        clean = redact(message, secrets)
        if record.exc_info:
            clean += "\n" + redact("".join(traceback.format_exception(*record.exc_info)),
                                   secrets).rstrip()
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = clean, ()
        return True
