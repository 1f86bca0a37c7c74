"""Scrub link tokens and secret keys out of text before it reaches a log or an error.

Tokens are opaque (Fintoc may change their format at any time), so the scrubbing does
not rely only on their shape: the value of any ``link_token=`` query parameter and the
segment after ``/v1/links/`` are removed whatever they look like, and callers can
register known secrets to be removed verbatim.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

MASK = "***"

# Each pattern keeps its group 1 (the context) and masks the rest of the match.
_PATTERNS: tuple[re.Pattern[str], ...] = (
    # ?link_token=<anything up to a delimiter>, also URL-encoded or in JSON-ish text
    re.compile(r"(link_token(?:=|%3D|\"?\s*[:=]\s*\"?))[^&\s\"'<>;,)\]}]+", re.IGNORECASE),
    # /v1/links/<token> but not the collection route /v1/links/exchange
    re.compile(r"(/v1/links/)(?!exchange\b|\{)[^/?#\s\"'<>;,)\]}]+"),
    # the documented token shape, wherever it appears
    re.compile(r"()\blink_[A-Za-z0-9]+_token_[A-Za-z0-9_\-]+"),
    # secret (and, harmlessly, public) keys
    re.compile(r"()\b[sp]k_(?:test|live)_[A-Za-z0-9_\-]+"),
)


class SecretIndex:
    """Known secrets, indexed so that scrubbing a line costs O(len(line)), not O(secrets).

    A sync of 10,000 links knows 10,000 tokens; trying ``str.replace`` with each on every
    log line would dominate the run. Secrets of at least ``PREFIX`` characters are found
    through a dict of their first characters (substring semantics kept); shorter ones,
    rare, are replaced one by one.
    """

    PREFIX = 12

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        short: set[str] = set()
        by_prefix: dict[str, set[str]] = {}
        for secret in secrets:
            if not secret:
                continue
            if len(secret) < self.PREFIX:
                short.add(secret)
            else:
                by_prefix.setdefault(secret[: self.PREFIX], set()).add(secret)
        self.secrets = frozenset(short) | frozenset(x for v in by_prefix.values() for x in v)
        self._short = tuple(sorted(short, key=len, reverse=True))
        self._by_prefix = by_prefix

    def with_more(self, secrets: Iterable[str]) -> SecretIndex:
        """A new index with these secrets added."""
        return SecretIndex(self.secrets | {s for s in secrets if s})

    def mask(self, text: str) -> str:
        """``text`` with every known secret replaced by the mask."""
        for secret in self._short:
            text = text.replace(secret, MASK)
        if not self._by_prefix:
            return text
        k, found = self.PREFIX, set()
        for i in range(len(text) - k + 1):
            for secret in self._by_prefix.get(text[i : i + k], ()):
                if text.startswith(secret, i):
                    found.add(secret)
        for secret in sorted(found, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text


def scrub(text: str, secrets: Iterable[str] | SecretIndex = ()) -> str:
    """Return ``text`` with link tokens, secret keys and the given secrets masked."""
    index = secrets if isinstance(secrets, SecretIndex) else SecretIndex(secrets)
    text = index.mask(text)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs the message, its arguments and exception text.

    It never drops a record; it rewrites it in place so every handler sees the
    scrubbed version. ``secrets`` are removed verbatim and can be updated later
    with :meth:`add_secrets` (e.g. after loading link tokens from the database).
    """

    def __init__(self, secrets: Iterable[str] = (), name: str = "") -> None:
        super().__init__(name)
        self._lock = threading.Lock()
        self._secrets = SecretIndex(secrets)

    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Register more values to scrub verbatim."""
        new = {s for s in secrets if s} - self._secrets.secrets
        if not new:
            return
        with self._lock:
            self._secrets = self._secrets.with_more(new)

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub ``record`` in place; always keep it."""
        secrets = self._secrets
        # Render msg % args first: a token may sit in an argument of any type.
        record.msg = scrub(record.getMessage(), secrets)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, secrets)
            # The formatter would re-render from exc_info; the cached text wins only
            # if exc_info is gone.
            record.exc_info = None
        if record.stack_info:
            record.stack_info = scrub(record.stack_info, secrets)
        return True


def install_redaction(
    logger: logging.Logger | None = None, secrets: Iterable[str] = ()
) -> RedactingFilter:
    """Attach a :class:`RedactingFilter` to ``logger``'s handlers (root by default).

    Filters on a logger do not see records propagated from child loggers, but filters
    on handlers do, so the filter goes on every handler (and on the logger itself for
    records it emits directly).
    """
    logger = logger if logger is not None else logging.getLogger()
    flt = RedactingFilter(secrets)
    logger.addFilter(flt)
    for handler in logger.handlers:
        handler.addFilter(flt)
    return flt
