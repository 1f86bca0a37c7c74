"""Colour on a terminal, never otherwise: not when piped, not with NO_COLOR, not on TERM=dumb."""

from __future__ import annotations

import os
from typing import TextIO

_CODES = {"green": "32", "red": "31", "yellow": "33", "bold": "1", "dim": "2"}


def wants_colour(stream: TextIO) -> bool:
    """True only for a TTY, with NO_COLOR unset (https://no-color.org) and a capable TERM."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, colour: str, enabled: bool) -> str:
    """text in an ANSI colour when enabled, else unchanged."""
    return f"\x1b[{_CODES[colour]}m{text}\x1b[0m" if enabled else text


def mark(ok: bool, enabled: bool) -> str:
    """✓ in green or ✗ in red (plain `ok` / `FAIL` words follow it, so no colour is needed)."""
    return paint("✓ ok  ", "green", enabled) if ok else paint("✗ FAIL", "red", enabled)
