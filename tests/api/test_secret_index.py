"""SecretIndex masks known secrets anywhere in a text, long and short, overlapping ones too."""

from __future__ import annotations

from sync.redact import MASK, SecretIndex, scrub


def test_masks_secrets_inside_words_and_urls() -> None:
    """A secret is masked as a substring, even glued to other characters."""
    token = "opaque-Token-Value-1234567890"
    text = f"url=/v1/links/{token}?x=1 glued:xx{token}yy"
    assert token not in SecretIndex([token]).mask(text)
    assert SecretIndex([token]).mask(text).count(MASK) == 2


def test_short_and_overlapping_secrets() -> None:
    """Short secrets (under the index prefix) and a secret inside another are all masked."""
    long_secret = "abcdefghijklmnopqrstuvwxyz"
    inner = "ghijklmnopqrst"
    text = f"{long_secret} {inner} tiny!"
    masked = SecretIndex([long_secret, inner, "tiny"]).mask(text)
    assert masked == f"{MASK} {MASK} {MASK}!"


def test_with_more_adds_and_scrub_accepts_an_index() -> None:
    """with_more returns a bigger index; scrub takes an index or a plain list alike."""
    index = SecretIndex(["first-secret-value"]).with_more(["second-secret-value"])
    text = "first-secret-value second-secret-value"
    assert scrub(text, index) == scrub(text, ["first-secret-value", "second-secret-value"])
    assert "secret-value" not in scrub(text, index)
