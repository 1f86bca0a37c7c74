"""Deterministic, stateless randomness keyed by names.

Every random choice in the sandbox is a pure function of ``(seed, *parts)``, so any
movement, balance tick or status flip can be recomputed on demand without replaying
history. That is what lets the world generate millions of movements lazily.
"""

from __future__ import annotations

import hashlib
import random

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _digest(seed: int, parts: tuple[object, ...]) -> bytes:
    key = "\x1f".join([str(seed), *(str(p) for p in parts)])
    return hashlib.blake2b(key.encode(), digest_size=16).digest()


def unit(seed: int, *parts: object) -> float:
    """A float in [0, 1) determined by the seed and the parts."""
    return int.from_bytes(_digest(seed, parts)[:8], "big") / 2**64


def rng(seed: int, *parts: object) -> random.Random:
    """A ``random.Random`` seeded from the seed and the parts (for bulk draws)."""
    return random.Random(int.from_bytes(_digest(seed, parts), "big"))


def ident(seed: int, *parts: object, length: int = 16) -> str:
    """A base62 identifier like Fintoc's (``nMNejK7BT8oGbvO4``)."""
    number = int.from_bytes(hashlib.blake2b(_digest(seed, ("id", *parts)), digest_size=32).digest())
    chars = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(chars)
