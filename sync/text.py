"""Text from outside made storable once, where it enters (STYLE.md habit 13).

An API payload, an error message or a header may hold anything JSON or HTTP can carry:
a NUL (``\\u0000``), a lone surrogate (``\\udc80``), a megabyte of text. Postgres rejects
the first two in ``text`` and ``jsonb`` (and a NUL in a ``sync_runs.errors`` document
fails the whole UPDATE that closes a run), a log line or an exception message does not
need the third. :func:`safe_text` turns any of them into bounded, valid Unicode without
NUL: it replaces, it never raises.
"""

from __future__ import annotations

import re

#: What replaces a character Postgres cannot store (U+FFFD REPLACEMENT CHARACTER).
REPLACEMENT = "\ufffd"
#: The default bound for a message or a header value (error texts, reasons).
MESSAGE_LIMIT = 2000
ELLIPSIS = "…"

# NUL and UTF-16 surrogates (which only occur unpaired in a Python str: json.loads and
# the UTF-8 codec combine valid pairs into one code point).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def safe_text(value: object, limit: int = MESSAGE_LIMIT) -> str:
    """``value`` as a string of at most ``limit`` characters, valid UTF-8, without NUL.

    Non-strings are rendered with ``str()`` first; a longer text is cut and ends with
    ``…``; NUL and lone surrogates become U+FFFD.
    """
    text = value if isinstance(value, str) else _render(value)
    if len(text) > limit:
        text = text[: max(0, limit - len(ELLIPSIS))] + ELLIPSIS
    return _UNSTORABLE.sub(REPLACEMENT, text)


def is_safe_text(value: str) -> bool:
    """Whether ``value`` has no character :func:`safe_text` would replace."""
    return _UNSTORABLE.search(value) is None


def safe_json(value: object, limit: int = MESSAGE_LIMIT) -> object:
    """A JSON-like document with every string (keys too) made safe; other scalars kept."""
    if isinstance(value, str):
        return safe_text(value, limit)
    if isinstance(value, dict):
        return {safe_text(str(k), 200): safe_json(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [safe_json(v, limit) for v in value]
    return value


def _render(value: object) -> str:
    try:
        return str(value)
    except Exception:  # a hostile __str__ must not stop us either
        return f"<unprintable {type(value).__name__}>"
