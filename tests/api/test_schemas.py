"""The JSON boundary: Fintoc payloads → frozen dataclasses or a PayloadError."""

from __future__ import annotations

import contextlib
import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.api.schemas import (
    Account,
    Link,
    Movement,
    decode_movement_page,
    parse_account,
    parse_link,
    parse_link_with_accounts,
    parse_movement,
    parse_timestamp,
)
from sync.errors import PayloadError

LINK: dict[str, Any] = {
    "id": "link_nMNejK7BT8oGbvO4",
    "object": "link",
    "accounts": [
        {
            "id": "acc_Z6AwnGn4idL7DPj4",
            "object": "account",
            "balance": {"available": 7010510, "current": 7010510, "limit": 7510510},
            "currency": "CLP",
            "holder_id": "111111111",
            "holder_name": "Test Customer 1",
            "name": "Cuenta Corriente",
            "number": "0000000000",
            "official_name": "Cuenta Corriente Moneda Local",
            "type": "checking_account",
        }
    ],
    "active": True,
    "created_at": "2020-04-22T21:10:19.254Z",
    "holder_id": "111111111",
    "holder_type": "individual",
    "institution": {"id": "cl_banco_de_chile", "country": "cl", "name": "Banco de Chile"},
    "last_time_refreshed": "2020-04-22T23:10:19.254Z",
    "link_token": None,
    "mode": "test",
    "refresh_status": "refreshing",
    "status": "active",
    "username": "111111111",
}
ACCOUNT: dict[str, Any] = {
    "id": "acc_nMNejK7BT8oGbvO4",
    "object": "account",
    "balance": {"available": 500000, "current": 500000, "limit": 500000},
    "currency": "CLP",
    "holder_id": "111111111",
    "holder_name": "Test Customer 1",
    "name": "Cuenta Corriente",
    "next_refresh": "2020-11-18T22:43:54.591Z",
    "number": "0000000000",
    "official_name": "Cuenta Corriente Moneda Local",
    "refresh_status": "refreshing",
    "refreshed_at": "2020-11-18T18:43:54.591Z",
    "removed_from_link": False,
    "type": "checking_account",
}
MOVEMENT: dict[str, Any] = {
    "id": "mov_BO381oEATXonG6bj",
    "object": "movement",
    "amount": 59400,
    "comment": "Pago factura 198",
    "currency": "CLP",
    "description": "Traspaso de:Fintoc SpA",
    "pending": False,
    "post_date": "2020-04-17T00:00:00.000Z",
    "recipient_account": None,
    "reference_id": "123740123",
    "sender_account": {
        "holder_id": "111111111",
        "holder_name": "Test Company 1",
        "institution": {"id": "cl_banco_de_chile", "country": "cl", "name": "Banco de Chile"},
        "number": "0000000000",
    },
    "status": "confirmed",
    "transaction_date": "2020-04-16T11:31:12.000Z",
    "type": "transfer",
}


PARSERS = {
    "link": parse_link_with_accounts,
    "account": lambda o: parse_account(o, "link_1"),
    "movement": lambda o: parse_movement(o, "acc_1"),
}


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    out.update(changes)
    return out


def without(base: dict[str, Any], *keys: str) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key in keys:
        out.pop(key, None)
    return out


# ---------------------------------------------------------------- the documented examples


def test_doc_link_example_parses_exactly() -> None:
    """The Link example from Fintoc's docs parses field by field, accounts included."""
    link, accounts = parse_link_with_accounts(LINK)
    assert link.id == "link_nMNejK7BT8oGbvO4"
    assert link.institution is not None and link.institution.name == "Banco de Chile"
    assert (link.holder_type, link.mode, link.status, link.active) == (
        "individual",
        "test",
        "active",
        True,
    )
    assert link.created_at == datetime(2020, 4, 22, 21, 10, 19, 254000, tzinfo=UTC)
    assert [a.id for a in accounts] == ["acc_Z6AwnGn4idL7DPj4"]
    assert accounts[0].link_id == link.id
    assert (accounts[0].balance_available, accounts[0].balance_limit) == (7010510, 7510510)


def test_doc_account_example_parses() -> None:
    """The Account example parses, including the movements-product-only fields."""
    acc = parse_account(ACCOUNT, "link_1")
    assert isinstance(acc, Account)
    assert acc.balance_current == 500000 and acc.removed_from_link is False
    assert acc.refreshed_at == datetime(2020, 11, 18, 18, 43, 54, 591000, tzinfo=UTC)


def test_doc_movement_example_parses_transfer_parties() -> None:
    """The Movement example parses, flattening the sender account and its institution."""
    mov = parse_movement(MOVEMENT, "acc_1")
    assert isinstance(mov, Movement)
    assert (mov.amount, mov.account_id, mov.status) == (59400, "acc_1", "confirmed")
    assert mov.post_date == datetime(2020, 4, 17, tzinfo=UTC)
    assert mov.sender_holder_name == "Test Company 1"
    assert mov.sender_institution_id == "cl_banco_de_chile"
    assert mov.recipient_holder_id is None and mov.recipient_institution is None


def test_legacy_2020_link_shape_parses() -> None:
    """A 2020-style link (no object/status/active/refresh_status) parses with Nones."""
    legacy = without(LINK, "object", "status", "active", "refresh_status", "last_time_refreshed")
    link = parse_link(with_(legacy, id="6n12zLmai3lLE9Dq"))
    assert link.id == "6n12zLmai3lLE9Dq"
    assert link.status is None and link.active is None and link.last_time_refreshed is None


def test_unknown_fields_and_enum_values_pass_through() -> None:
    """New fields are ignored and unknown enum values are kept as text."""
    link = parse_link(with_(LINK, status="suspended_by_bank", brand_new_field={"x": 1}))
    assert link.status == "suspended_by_bank"


def test_null_accounts_means_no_accounts() -> None:
    """accounts: null (list links, PATCH) gives an empty account list."""
    assert parse_link_with_accounts(with_(LINK, accounts=None))[1] == []
    assert parse_link_with_accounts(without(LINK, "accounts"))[1] == []


def test_link_token_is_ignored_and_never_in_errors() -> None:
    """A link_token in the payload is not kept, nor echoed in a later error message."""
    payload = with_(LINK, link_token="link_abc_token_SECRET", holder_type=5)
    with pytest.raises(PayloadError) as info:
        parse_link(payload)
    assert "SECRET" not in str(info.value)
    assert not hasattr(parse_link(with_(LINK, link_token="x")), "link_token")


def test_dataclasses_are_frozen() -> None:
    """Parsed objects cannot be mutated by accident downstream."""
    link = parse_link(LINK)
    with pytest.raises(AttributeError):
        link.id = "other"  # type: ignore[misc]
    assert isinstance(link, Link)


# ---------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-04-22T21:10:19.254Z", datetime(2020, 4, 22, 21, 10, 19, 254000, tzinfo=UTC)),
        ("2020-09-11T00:00:00Z", datetime(2020, 9, 11, tzinfo=UTC)),
        ("2020-09-11T00:00:00+00:00", datetime(2020, 9, 11, tzinfo=UTC)),
        ("2020-09-11T00:00:00-03:00", datetime(2020, 9, 11, 3, tzinfo=UTC)),
        ("2020-09-11T00:00:00", datetime(2020, 9, 11, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_forms(text: str, expected: datetime) -> None:
    """Fintoc's timestamp spellings all become the same aware UTC instant."""
    parsed = parse_timestamp(text, "created_at")
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() is not None and parsed.tzinfo == UTC


@pytest.mark.parametrize("bad", ["yesterday", "", 1587590419, True, {}, "2020-13-01T00:00:00Z"])
def test_parse_timestamp_rejects_garbage(bad: object) -> None:
    """A non-ISO timestamp is a PayloadError naming the field."""
    with pytest.raises(PayloadError, match='"created_at"') as info:
        parse_timestamp(bad, "created_at")
    assert info.value.field == "created_at"


def test_parse_timestamp_none_is_none() -> None:
    """null stays None (nullable timestamps like refreshed_at)."""
    assert parse_timestamp(None, "refreshed_at") is None


# ---------------------------------------------------------------- strictness


def test_balance_error_message_names_account_and_field() -> None:
    """A string balance is rejected with the documented plain-words message."""
    bad = with_(ACCOUNT, id="acc_123", balance={"available": 1, "current": "12.5", "limit": 1})
    with pytest.raises(PayloadError) as info:
        parse_account(bad, "link_1")
    assert (
        str(info.value) == 'account acc_123: field "balance.current" must be an integer, got "12.5"'
    )
    assert info.value.field == "balance.current"


@pytest.mark.parametrize("value", [True, 12.5, 12.0, "12", 2**63, -(2**63) - 1, [1]])
def test_balance_members_must_be_int64(value: object) -> None:
    """Balance members reject bools, floats, strings and values beyond 64 bits."""
    bad = with_(ACCOUNT, balance={"available": value, "current": 1, "limit": 1})
    with pytest.raises(PayloadError, match=r"balance\.available"):
        parse_account(bad, "link_1")


def test_balance_accepts_int64_bounds() -> None:
    """The extreme 64-bit values are accepted (business balances exceed int32)."""
    acc = parse_account(with_(ACCOUNT, balance={"available": 2**63 - 1, "current": -(2**63)}), "l")
    assert acc.balance_available == 2**63 - 1 and acc.balance_limit is None


@pytest.mark.parametrize("balance", [None, "absent", 5, []])
def test_missing_or_malformed_balance_is_an_error(balance: object) -> None:
    """The balance object is required (fintoc-api.md: never null)."""
    bad = without(ACCOUNT, "balance") if balance == "absent" else with_(ACCOUNT, balance=balance)
    with pytest.raises(PayloadError, match='"balance"'):
        parse_account(bad, "link_1")


@pytest.mark.parametrize("ident", [None, "", "   ", 42, ["x"]])
@pytest.mark.parametrize(
    "parse",
    [parse_link, lambda o: parse_account(o, "l"), lambda o: parse_movement(o, "a")],
)
def test_id_is_required_everywhere(ident: object, parse: Any) -> None:
    """Every object needs a non-empty string id."""
    base = {"id": ident, "amount": 1, "post_date": "2020-01-01T00:00:00Z", "balance": {}}
    with pytest.raises(PayloadError, match='"id"'):
        parse(base)


@pytest.mark.parametrize("amount", [None, True, 1.5, "100", 2**64])
def test_movement_amount_must_be_int64(amount: object) -> None:
    """amount is a required signed 64-bit int."""
    with pytest.raises(PayloadError, match='movement mov_BO381oEATXonG6bj: field "amount"'):
        parse_movement(with_(MOVEMENT, amount=amount), "acc_1")


def test_movement_post_date_is_required() -> None:
    """A movement without post_date is rejected."""
    with pytest.raises(PayloadError, match="post_date"):
        parse_movement(without(MOVEMENT, "post_date"), "acc_1")


def test_negative_amount_is_money_out() -> None:
    """Negative amounts (money out) are valid."""
    assert parse_movement(with_(MOVEMENT, amount=-1500), "acc_1").amount == -1500


@pytest.mark.parametrize(
    ("base", "field"),
    [
        (LINK, "status"),
        (LINK, "refresh_status"),
        (LINK, "holder_type"),
        (LINK, "mode"),
        (ACCOUNT, "type"),
        (ACCOUNT, "refresh_status"),
        (MOVEMENT, "type"),
        (MOVEMENT, "status"),
    ],
)
def test_enum_fields_must_be_text(base: dict[str, Any], field: str) -> None:
    """Enum-like fields are free text, but a number there is a PayloadError."""
    parse = PARSERS[base["object"]]
    with pytest.raises(PayloadError, match=f'"{field}" must be a string or null, got 7'):
        parse(with_(base, **{field: 7}))


def test_active_must_be_boolean() -> None:
    """active: "yes" is rejected rather than coerced."""
    with pytest.raises(PayloadError, match='"active"'):
        parse_link(with_(LINK, active="yes"))


def test_overlong_string_is_rejected() -> None:
    """A 10,001-character description is treated as garbage."""
    with pytest.raises(PayloadError, match="longer than 10000"):
        parse_movement(with_(MOVEMENT, description="x" * 10_001), "acc_1")


def test_nul_and_lone_surrogates_are_rejected() -> None:
    """Text Postgres cannot store (NUL, lone surrogates) is a PayloadError, not a DB crash."""
    with pytest.raises(PayloadError, match="NUL"):
        parse_movement(with_(MOVEMENT, comment="a\x00b"), "acc_1")
    with pytest.raises(PayloadError, match="Unicode"):
        parse_movement(with_(MOVEMENT, comment="a\ud800b"), "acc_1")


def test_nested_institution_needs_an_id() -> None:
    """An embedded institution without id is rejected with a dotted field name."""
    bad = with_(MOVEMENT, sender_account={"institution": {"name": "X"}})
    with pytest.raises(PayloadError, match=r'"sender_account\.institution\.id"'):
        parse_movement(bad, "acc_1")


def test_accounts_must_be_a_list() -> None:
    """accounts as an object is rejected."""
    with pytest.raises(PayloadError, match='"accounts"'):
        parse_link_with_accounts(with_(LINK, accounts={"id": "acc"}))


@pytest.mark.parametrize("obj", [None, [], "link", 3])
def test_non_objects_are_rejected(obj: object) -> None:
    """A JSON value that is not an object is a PayloadError."""
    with pytest.raises(PayloadError, match="expected a JSON object") as info:
        parse_link(obj)
    assert info.value.field


# ---------------------------------------------------------------- properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def mutated(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Real payloads with some keys replaced by arbitrary JSON values or dropped."""
    keys = st.sampled_from([*sorted(base), "balance", "sender_account", "institution"])
    changes = st.dictionaries(keys, json_values | st.just("__drop__"), max_size=4)

    def apply(ch: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(base)
        for key, value in ch.items():
            if value == "__drop__":
                out.pop(key, None)
            else:
                out[key] = value
        return out

    return changes.map(apply)


@settings(max_examples=300, deadline=None)
@given(value=json_values, kind=st.sampled_from(sorted(PARSERS)))
def test_any_json_value_parses_or_raises_payload_error(value: object, kind: str) -> None:
    """Any JSON value gives a dataclass or a PayloadError, never another exception."""
    with contextlib.suppress(PayloadError):
        PARSERS[kind](value)


@settings(max_examples=400, deadline=None)
@given(
    payload=st.one_of(
        mutated(LINK).map(lambda p: ("link", p)),
        mutated(ACCOUNT).map(lambda p: ("account", p)),
        mutated(MOVEMENT).map(lambda p: ("movement", p)),
    )
)
def test_mutated_real_payloads_parse_or_raise_payload_error(payload: tuple[str, Any]) -> None:
    """Near-valid payloads give a well-typed dataclass or a PayloadError naming a field."""
    kind, obj = payload
    try:
        result = PARSERS[kind](obj)
    except PayloadError as exc:
        assert exc.field, "every PayloadError names its field"
        return
    pair = isinstance(result, tuple) and not hasattr(result, "_fields")  # (link, accounts)
    parsed = result[0] if pair else result
    assert isinstance(parsed.id, str) and parsed.id
    values = parsed._asdict() if hasattr(parsed, "_asdict") else vars(parsed)
    for value in values.values():
        if isinstance(value, datetime):
            assert value.tzinfo == UTC
        if isinstance(value, int) and not isinstance(value, bool):
            assert -(2**63) <= value < 2**63


# ---------------------------------------------------------------- the typed page decoder


def _page(*movements: dict[str, Any]) -> bytes:
    return json.dumps(list(movements), ensure_ascii=False, separators=(",", ":")).encode()


def test_typed_page_decoder_matches_the_parser_on_a_real_page() -> None:
    from sync.sandbox import Sandbox

    truth = Sandbox(seed=42).truth(movements=True)
    page = [m for items in truth["movements"].values() for m in items][:300]
    page = [{k: v for k, v in m.items() if k != "removed"} for m in page]
    assert any(m["sender_account"] for m in page) and any(m["transaction_date"] for m in page)
    raw = json.dumps(page, ensure_ascii=False).encode()
    typed = decode_movement_page(raw, "acc_1")
    assert typed == [parse_movement(m, "acc_1") for m in page]


@pytest.mark.parametrize(
    "change",
    [
        {"comment": "a\x00b"},
        {"description": "x" * 10_001},
        {"id": "m" * 256},
        {"id": "   "},
        {"amount": 2**63},
        {"amount": 1.5},
        {"post_date": "yesterday"},
        {"transaction_date": "2026-13-45T25:61:00Z"},
        {"pending": "no"},
        {"sender_account": "someone"},
        {"sender_account": {"institution": {"name": "no id"}}},
    ],
)
def test_typed_page_decoder_leaves_unusual_pages_to_the_parser(change: dict[str, Any]) -> None:
    """One odd movement sends its whole page to the dict path, where the parser decides."""
    page = _page(MOVEMENT, with_(MOVEMENT, **({"id": "mov_other"} | change)))
    assert decode_movement_page(page, "acc_1") is None


TIMESTAMP_SHAPES = [
    "2026-11-01T10:00:00Z",
    "2026-11-01T10:00:00.254Z",
    "2026-11-01T10:00:00+00:00",
    "2026-11-01T10:00:00.123456789Z",  # more than microseconds: truncated, not rounded
    "2026-11-01T10:00:00.9999999Z",
    " 2026-11-01T10:00:00Z",
    "2026-11-01T10:00:00Z ",
    "2026-11-01T10:00:00-03:00",
    "2026-11-01T10:00:00",  # naive: UTC
    "2026-11-01",
    "2026-11-01t10:00:00z",
    "0001-01-01T00:00:00+03:00",  # before year 1 in UTC
    "9999-12-31T23:59:59-03:00",  # after year 9999 in UTC
    "2026-11-01T23:59:60Z",
    "2026-11-01T24:00:00Z",
    "2026-11-01T10:00:00.0000000000000000000000000000000000000000000000000001Z",  # > 64
]


@pytest.mark.parametrize("field", ["post_date", "transaction_date"])
@pytest.mark.parametrize("value", TIMESTAMP_SHAPES)
def test_typed_page_decoder_reads_timestamps_as_the_parser_does(field: str, value: str) -> None:
    """Each timestamp shape: the typed page gives what parse_movement gives, or leaves
    the page to it (None) when parse_movement refuses it."""
    movement = with_(MOVEMENT, **{field: value})
    typed = decode_movement_page(_page(movement), "acc_1")
    try:
        expected = parse_movement(movement, "acc_1")
    except PayloadError:
        assert typed is None
        return
    if typed is not None:
        assert typed == [expected]
        assert getattr(typed[0], field).tzinfo is UTC


def test_typed_page_decoder_refuses_a_lone_surrogate() -> None:
    raw = _page(MOVEMENT).replace(b'"description":"', b'"description":"\\udc80', 1)
    assert b"\\udc80" in raw
    assert decode_movement_page(raw, "acc_1") is None
    with pytest.raises(PayloadError):
        parse_movement(json.loads(raw)[0], "acc_1")


def test_a_movement_id_longer_than_an_id_is_refused_by_both_paths() -> None:
    with pytest.raises(PayloadError, match="255"):
        parse_movement(with_(MOVEMENT, id="m" * 256), "acc_1")
