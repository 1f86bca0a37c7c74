"""safe_text: any outside text becomes bounded, valid Unicode without NUL."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sync.text import is_safe_text, safe_json, safe_text


def test_nul_and_lone_surrogates_are_replaced() -> None:
    """NUL and unpaired surrogates become U+FFFD; the rest of the text is kept."""
    assert safe_text("a\x00b\udc80c\ud800") == "a\ufffdb\ufffdc\ufffd"


def test_long_text_is_cut_with_an_ellipsis() -> None:
    """A text longer than the limit is cut to exactly the limit, ending with an ellipsis."""
    out = safe_text("x" * 10_000, 100)
    assert len(out) == 100 and out.endswith("…")


def test_non_strings_are_rendered_and_a_failing_str_does_not_raise() -> None:
    """Any object becomes text; one whose __str__ raises gets a placeholder."""

    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert safe_text(12) == "12"
    assert safe_text(Hostile()) == "<unprintable Hostile>"


def test_json_documents_are_made_safe_keys_included() -> None:
    """Every string of a JSON-like document, keys too, is made safe; numbers are kept."""
    assert safe_json({"k\x00": ["v\udc80", 1, None]}) == {"k\ufffd": ["v\ufffd", 1, None]}


@given(st.text(alphabet=st.characters(codec=None)), st.integers(min_value=1, max_value=300))
def test_any_text_comes_out_storable(value: str, limit: int) -> None:
    """Whatever goes in, the result encodes as UTF-8, has no NUL and respects the limit."""
    out = safe_text(value, limit)
    out.encode("utf-8")
    assert is_safe_text(out) and len(out) <= limit
