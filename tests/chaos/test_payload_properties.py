"""Property tests of the JSON boundary: any JSON value is a valid row or a typed PayloadError."""

from __future__ import annotations

import json
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from sync.api import schemas
from sync.errors import PayloadError
from sync.sandbox import Sandbox
from sync.store import loaders, movements

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["2026-13-45T25:61:00Z", "2026-11-01T00:00:00Z", "x" * 5000, "a\x00b"])
    # timestamp shapes the fast paths and the strict parser must treat alike
    | st.sampled_from(
        [
            "2026-11-01T10:00:00.123456789Z",
            " 2026-11-01T10:00:00Z",
            "2026-11-01T10:00:00-03:00",
            "2026-11-01T10:00:00",
            "2026-11-01",
            "2026-11-01t10:00:00z",
            "0001-01-01T00:00:00+03:00",
            "9999-12-31T23:59:59-03:00",
            "2026-11-01T23:59:60Z",
        ]
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _examples() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    truth = Sandbox(seed=42).truth(movements=True)
    link = dict(truth["links"][1])
    account = dict(truth["accounts"][1])
    movement = next(
        m for items in truth["movements"].values() for m in items if m["sender_account"]
    )
    link["accounts"] = [{k: v for k, v in account.items() if k != "link_id"}]
    return link, account, movement


LINK, ACCOUNT, MOVEMENT = _examples()


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> object:
    """A real payload with keys dropped, replaced by any JSON value, or added; or any JSON."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    obj = dict(base)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(obj)) | st.text(max_size=8))
        action = draw(st.sampled_from(["drop", "replace", "replace"]))
        if action == "drop":
            obj.pop(key, None)
        else:
            obj[key] = draw(json_values)
    return obj


def _parse_all(link: object, movement: object) -> tuple[Any, Any]:
    parsed_link = None
    parsed_movement = None
    with suppress(PayloadError):
        parsed_link = schemas.parse_link_with_accounts(link)
    with suppress(PayloadError):
        parsed_movement = schemas.parse_movement(movement, "acc_x")
    return parsed_link, parsed_movement


@settings(max_examples=400, deadline=None)
@given(link=mutated(LINK), movement=mutated(MOVEMENT))
def test_any_json_parses_or_raises_a_payload_error(link: object, movement: object) -> None:
    """Parsing never raises anything but PayloadError, whatever the JSON."""
    _parse_all(link, movement)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(link=mutated(LINK), movement=mutated(MOVEMENT))
def test_whatever_parses_can_be_stored(
    link: object, movement: object, sessions: sessionmaker[Session]
) -> None:
    """A payload that parses gives rows Postgres accepts (the transaction is rolled back)."""
    parsed_link, parsed_movement = _parse_all(link, movement)
    with sessions() as session:
        if parsed_link is not None:
            lnk, accounts = parsed_link
            loaders.upsert_links(session, [lnk], NOW, None)
            loaders.upsert_accounts(
                session, [a for a in accounts if a.link_id == lnk.id], NOW, None
            )
            stored = session.execute(
                text("SELECT count(*) FROM fintoc.links WHERE id = :i"), {"i": lnk.id}
            ).scalar()
            assert stored == 1, "the parsed link reached the table"
            if parsed_movement is not None and accounts:
                mov = schemas.parse_movement(movement, accounts[0].id)
                movements.write_batch(session, [mov], NOW)
                amount = session.execute(
                    text("SELECT amount FROM fintoc.movements WHERE id = :i"), {"i": mov.id}
                ).scalar()
                assert amount == mov.amount, "the parsed movement reached the table"
        session.rollback()


@pytest.mark.parametrize("amount", [2**63, -(2**63) - 1, 10**20])
def test_amounts_beyond_64_bits_are_payload_errors(amount: int) -> None:
    """An amount that does not fit a bigint is a PayloadError naming `amount`."""
    with pytest.raises(PayloadError) as info:
        schemas.parse_movement(MOVEMENT | {"amount": amount}, "acc_x")
    assert info.value.field == "amount"


@settings(max_examples=400, deadline=None)
@given(page=st.lists(mutated(MOVEMENT), min_size=1, max_size=3))
def test_the_typed_page_decoder_accepts_only_what_the_parser_accepts(page: list[object]) -> None:
    """A page the typed decoder reads gives exactly the movements parse_movement gives;
    any page with one movement parse_movement refuses is left to the dict path (None)."""
    raw = json.dumps(page, ensure_ascii=False).encode("utf-8", "surrogatepass")
    typed = schemas.decode_movement_page(raw, "acc_x")
    try:
        expected = [schemas.parse_movement(item, "acc_x") for item in json.loads(raw)]
    except PayloadError:
        assert typed is None
        return
    except ValueError:  # a lone surrogate that json itself will not decode from bytes
        assert typed is None
        return
    if typed is not None:
        assert typed == expected
