"""API keys (FLUX_API_KEYS_FILE): the keys file, the bearer check and the 401 answer.

Parsing and matching are pure. The side effects are reading the keys file (at start, after a
SIGHUP, and when the file changes: its stat is looked at most once a second) and one log line
per read. A file that cannot be used fails closed: no key is accepted, never no auth.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable, Sequence

log = logging.getLogger("flux_server.auth")

MIN_KEY_LENGTH = 16
CHECK_INTERVAL_S = 1.0  # how often a request may stat the keys file for a change
# Open without a key: probes (/health, /ready), the page's own files and the API's description.
OPEN_PATHS = frozenset({"/health", "/ready", "/", "/openapi.json", "/docs",
                        "/docs/oauth2-redirect", "/redoc"})
OPEN_PREFIXES = ("/page/",)
METRICS_PATH = "/metrics"
UNREADABLE_HINT = ("put one key per line (at least 16 printable ASCII characters, no spaces; "
                   "blank lines and # comments are ignored) in the file FLUX_API_KEYS_FILE "
                   "names, readable by the server, then send SIGHUP or restart it")

Signature = tuple[int, int, int, int]


class ApiKeysUnreadable(Exception):
    """FLUX_API_KEYS_FILE is missing, unreadable, empty or holds a malformed key. The message
    never quotes a key or the file's content."""

    hint = UNREADABLE_HINT


def parse_keys(text: str) -> tuple[bytes, ...]:
    """The keys in a keys file's text, one per line, in order and without duplicates; blank
    lines and lines starting with `#` are ignored. ApiKeysUnreadable names the bad line."""
    keys: list[bytes] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not (line.isascii() and line.isprintable()) or any(c.isspace() for c in line):
            raise ApiKeysUnreadable(f"line {number} of FLUX_API_KEYS_FILE is not a key: a key "
                                    "is printable ASCII without spaces")
        if len(line) < MIN_KEY_LENGTH:
            raise ApiKeysUnreadable(f"the key on line {number} of FLUX_API_KEYS_FILE has "
                                    f"{len(line)} characters, fewer than {MIN_KEY_LENGTH}")
        keys.append(line.encode("ascii"))
    if not keys:
        raise ApiKeysUnreadable("FLUX_API_KEYS_FILE holds no key (only blank lines and "
                                "comments)")
    return tuple(dict.fromkeys(keys))


def bearer_token(header: bytes | None) -> bytes | None:
    """The credentials of an `Authorization: Bearer <key>` header value, else None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(b" ")
    token = token.strip()
    return token if scheme.lower() == b"bearer" and token else None


def key_matches(given: bytes | None, keys: Sequence[bytes]) -> bool:
    """Whether `given` is one of `keys`, compared with hmac.compare_digest against every key
    (no early exit that would tell by its timing which key, or how many, were tried)."""
    candidate = given or b""
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(candidate, key)
    return matched and given is not None


def needs_key(path: str, metrics_public: bool) -> bool:
    """Whether a request for `path` (relative to the app's root) needs the API key: every
    path but the open ones, so a route added later is protected by default."""
    if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return False
    return not (metrics_public and path == METRICS_PATH)


def _stat(path: str) -> Signature | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)


class ApiKeys:
    """The keys of FLUX_API_KEYS_FILE, re-read on request (SIGHUP) or when the file changes.

    Used from the event loop's thread only (the middleware): no lock. `request_reload` is
    one assignment, safe in a signal handler; the re-read happens before the next check."""

    def __init__(self, path: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._keys: tuple[bytes, ...] = ()
        self._signature: Signature | None = None
        self._checked_at = float("-inf")
        self._reload_requested = False
        self.loaded = False  # reload() ran at least once
        self.error: ApiKeysUnreadable | None = None  # the last read's failure
        self.startup_error: ApiKeysUnreadable | None = None  # the first read's failure

    @property
    def count(self) -> int:
        return len(self._keys)

    def secrets(self) -> list[str]:
        """The current keys as text, for the log's redacting filter."""
        return [key.decode("ascii") for key in self._keys]

    def request_reload(self) -> None:
        """Re-read the file before the next check (the SIGHUP handler)."""
        self._reload_requested = True

    def reload(self) -> bool:
        """Read the file now. On failure no key is accepted any more (fail closed) until a
        read succeeds; the error is logged with the path, never with file content."""
        first, self.loaded = not self.loaded, True
        self._signature = _stat(self.path)
        try:
            with open(self.path, encoding="utf-8") as handle:
                keys = parse_keys(handle.read())
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            error = ApiKeysUnreadable(f"FLUX_API_KEYS_FILE cannot be read: {reason}")
            return self._failed(error, first)
        except ApiKeysUnreadable as exc:
            return self._failed(exc, first)
        self._keys, self.error = keys, None
        log.info("api keys: %d key(s) loaded from FLUX_API_KEYS_FILE=%s", len(keys), self.path)
        return True

    def _failed(self, error: ApiKeysUnreadable, first: bool) -> bool:
        self._keys, self.error = (), error
        if first:
            self.startup_error = error
        log.error("api keys: %s (FLUX_API_KEYS_FILE=%s); no request needing a key is served "
                  "until this is fixed: %s", error, self.path, error.hint)
        return False

    def refresh(self) -> None:
        """Re-read the file if a reload was requested, or if its stat changed (looked at, at
        most once every CHECK_INTERVAL_S)."""
        if self._reload_requested:
            self._reload_requested = False
            self.reload()
            return
        now = self._clock()
        if now - self._checked_at < CHECK_INTERVAL_S:
            return
        self._checked_at = now
        if _stat(self.path) != self._signature:
            self.reload()

    def allows(self, authorization: bytes | None) -> bool:
        """Whether an Authorization header value carries one of the current keys."""
        self.refresh()
        return key_matches(bearer_token(authorization), self._keys)
