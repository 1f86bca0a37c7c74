"""The JSON boundary: Fintoc payloads in, typed frozen dataclasses out. No I/O.

Parsers are tolerant of unknown fields and missing optional keys (Fintoc adds fields
without a version bump, and pre-2021 objects lack ``object``, ``status``, ``active``…),
and strict on what we cannot do without: ``id`` everywhere, a movement's ``amount`` and
``post_date``, an account's ``balance``. Enum-like fields are not checked against a list
(new values appear without notice) but must be text. Anything else raises
:class:`~sync.errors.PayloadError`, whose message names the object and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, NamedTuple, NoReturn

import msgspec

from sync.errors import PayloadError
from sync.redact import scrub
from sync.text import safe_text

MAX_STRING = 10_000
# Fintoc ids are short (``link_nMNejK7BT8oGbvO4``, 16 characters before 2021); a longer
# one is not an id, and past ~2,700 bytes it would not fit a btree index entry.
MAX_ID = 255
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Institution:
    """A bank, as embedded in links and transfer accounts."""

    id: str
    name: str | None
    country: str | None


@dataclass(frozen=True)
class Link:
    """One bank login of one holder."""

    id: str
    institution: Institution | None
    holder_id: str | None
    holder_type: str | None
    username: str | None
    mode: str | None
    active: bool | None
    status: str | None
    refresh_status: str | None
    created_at: datetime | None
    last_time_refreshed: datetime | None


@dataclass(frozen=True)
class Account:
    """A bank account of a link, with its balance in integer minor units."""

    id: str
    link_id: str
    name: str | None
    official_name: str | None
    number: str | None
    type: str | None
    currency: str | None
    holder_id: str | None
    holder_name: str | None
    balance_available: int | None
    balance_current: int | None
    balance_limit: int | None
    refreshed_at: datetime | None
    next_refresh: datetime | None
    refresh_status: str | None
    removed_from_link: bool | None


class Movement(NamedTuple):
    """One movement of an account; ``amount`` is signed minor units (+ in, - out).

    A NamedTuple rather than a frozen dataclass: a backfill builds hundreds of thousands,
    and a tuple is built several times faster (immutable all the same).
    """

    id: str
    account_id: str
    amount: int
    currency: str | None
    description: str | None
    post_date: datetime
    transaction_date: datetime | None
    type: str | None
    status: str | None
    pending: bool | None
    reference_id: str | None
    comment: str | None
    sender_holder_id: str | None
    sender_holder_name: str | None
    sender_number: str | None
    sender_institution_id: str | None
    recipient_holder_id: str | None
    recipient_holder_name: str | None
    recipient_number: str | None
    recipient_institution_id: str | None
    sender_institution: Institution | None
    recipient_institution: Institution | None


def _show(value: object) -> str:
    """A short, scrubbed rendering of a bad value for an error message."""
    if isinstance(value, str):
        text = '"' + value[:40] + ('…"' if len(value) > 40 else '"')
    elif value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dict):
        text = "an object"
    elif isinstance(value, list):
        text = "an array"
    else:
        text = repr(value)[:40]
    return scrub(safe_text(text, 80))


def _describe(kind: str, obj_id: str | None) -> str:
    # the id may be the very text that is wrong: it must not poison the message
    return f"{kind} {scrub(safe_text(obj_id, 80))}" if obj_id else kind


def _check_text(value: str, where: str, field: str) -> str:
    """Reject strings Postgres cannot store or that are too long to be real."""
    if len(value) > MAX_STRING:
        raise PayloadError(
            f'{where}: field "{field}" is longer than {MAX_STRING} characters', field=field
        )
    if "\x00" in value:
        raise PayloadError(f'{where}: field "{field}" contains a NUL character', field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadError(f'{where}: field "{field}" is not valid Unicode', field=field) from None
    return value


def _check_id(value: str, where: str, field: str) -> str:
    """An id: storable text of at most MAX_ID characters."""
    if len(value) > MAX_ID:
        raise PayloadError(
            f'{where}: field "{field}" is longer than {MAX_ID} characters', field=field
        )
    return _check_text(value, where, field)


def _parse_iso(value: str) -> datetime:
    """Parse ISO-8601 (``Z`` or offset; naive means UTC) into an aware UTC datetime."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_timestamp(value: object, field: str, *, where: str = "payload") -> datetime | None:
    """Parse a Fintoc timestamp (``…T21:10:19.254Z``, ``…T00:00:00Z``, ``+00:00``).

    ``None`` passes through; anything else that is not an ISO-8601 string raises
    :class:`PayloadError`. The result is always timezone-aware, in UTC.
    """
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise PayloadError(
            f'{where}: field "{field}" must be an ISO-8601 timestamp, got {_show(value)}',
            field=field,
        )
    try:
        return _parse_iso(value.strip())
    except (ValueError, OverflowError):
        raise PayloadError(
            f'{where}: field "{field}" must be an ISO-8601 timestamp, got {_show(value)}',
            field=field,
        ) from None


class _Reader:
    """Typed access to one JSON object, with error messages that name object and field."""

    def __init__(self, obj: object, kind: str, prefix: str = "") -> None:
        self.kind, self.prefix = kind, prefix
        if not isinstance(obj, dict):
            raise PayloadError(
                f"{kind}: expected a JSON object, got {_show(obj)}", field=prefix or "<object>"
            )
        self.obj: dict[str, Any] = obj
        self.where = kind
        self.id = self._id() if not prefix else None

    def _id(self) -> str:
        value = self.obj.get("id")
        if not isinstance(value, str) or not value.strip():
            self.fail("id", "a non-empty string", value)
        self.where = _describe(self.kind, value)
        return _check_id(value, self.where, "id")

    def name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def fail(self, key: str, expected: str, value: object) -> NoReturn:
        field = self.name(key)
        raise PayloadError(
            f'{self.where}: field "{field}" must be {expected}, got {_show(value)}', field=field
        )

    def text(self, key: str) -> str | None:
        value = self.obj.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(key, "a string or null", value)
        return _check_text(value, self.where, self.name(key))

    def flag(self, key: str) -> bool | None:
        value = self.obj.get(key)
        if value is not None and not isinstance(value, bool):
            self.fail(key, "true, false or null", value)
        return value

    def integer(self, key: str, *, required: bool = False) -> int | None:
        value = self.obj.get(key)
        if value is None and not required:
            return None
        if type(value) is not int:  # bool is an int subclass; floats and strings are out
            self.fail(key, "an integer", value)
        if not INT64_MIN <= value <= INT64_MAX:
            self.fail(key, "a 64-bit integer", value)
        return value

    def timestamp(self, key: str) -> datetime | None:
        return parse_timestamp(self.obj.get(key), self.name(key), where=self.where)

    def child(self, key: str, *, required: bool = False) -> _Reader | None:
        value = self.obj.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, dict):
            self.fail(key, "an object", value)
        sub = _Reader(value, self.kind, prefix=self.name(key))
        sub.where = self.where
        return sub


def _institution(reader: _Reader | None) -> Institution | None:
    if reader is None:
        return None
    inst_id = reader.text("id")
    if not inst_id:
        reader.fail("id", "a non-empty string", reader.obj.get("id"))
    _check_id(inst_id, reader.where, reader.name("id"))
    return Institution(id=inst_id, name=reader.text("name"), country=reader.text("country"))


def parse_institution(obj: object) -> Institution:
    """Parse an institution object ``{id, name, country}``."""
    inst = _institution(_Reader(obj, "institution", prefix="institution"))
    assert inst is not None
    return inst


def parse_link(obj: object) -> Link:
    """Parse a Link object (list or get form); ``accounts`` and ``link_token`` are ignored."""
    r = _Reader(obj, "link")
    assert r.id is not None
    return Link(
        id=r.id,
        institution=_institution(r.child("institution")),
        holder_id=r.text("holder_id"),
        holder_type=r.text("holder_type"),
        username=r.text("username"),
        mode=r.text("mode"),
        active=r.flag("active"),
        status=r.text("status"),
        refresh_status=r.text("refresh_status"),
        created_at=r.timestamp("created_at"),
        last_time_refreshed=r.timestamp("last_time_refreshed"),
    )


def parse_link_with_accounts(obj: object) -> tuple[Link, list[Account]]:
    """Parse a Link with its embedded ``accounts`` (``null`` or absent means none)."""
    link = parse_link(obj)
    assert isinstance(obj, dict)
    accounts = obj.get("accounts")
    if accounts is None:
        return link, []
    if not isinstance(accounts, list):
        raise PayloadError(
            f'{_describe("link", link.id)}: field "accounts" must be an array or null, '
            f"got {_show(accounts)}",
            field="accounts",
        )
    return link, [parse_account(item, link.id) for item in accounts]


def parse_account(obj: object, link_id: str) -> Account:
    """Parse an Account; its ``balance`` object is required, its members are int64."""
    r = _Reader(obj, "account")
    assert r.id is not None
    balance = r.child("balance", required=True)
    assert balance is not None
    return Account(
        id=r.id,
        link_id=link_id,
        name=r.text("name"),
        official_name=r.text("official_name"),
        number=r.text("number"),
        type=r.text("type"),
        currency=r.text("currency"),
        holder_id=r.text("holder_id"),
        holder_name=r.text("holder_name"),
        balance_available=balance.integer("available"),
        balance_current=balance.integer("current"),
        balance_limit=balance.integer("limit"),
        refreshed_at=r.timestamp("refreshed_at"),
        next_refresh=r.timestamp("next_refresh"),
        refresh_status=r.text("refresh_status"),
        removed_from_link=r.flag("removed_from_link"),
    )


@dataclass(frozen=True)
class _Party:
    holder_id: str | None = None
    holder_name: str | None = None
    number: str | None = None
    institution: Institution | None = None


def _party(reader: _Reader | None) -> _Party:
    if reader is None:
        return _Party()
    return _Party(
        holder_id=reader.text("holder_id"),
        holder_name=reader.text("holder_name"),
        number=reader.text("number"),
        institution=_institution(reader.child("institution")),
    )


def parse_movement(obj: object, account_id: str) -> Movement:
    """Parse a Movement; ``amount`` (int64) and ``post_date`` are required.

    Movements are the bulk of every load (hundreds of thousands in a backfill), so a
    well-formed one takes a fast path with the same rules written inline; anything the
    fast path is not sure of goes through the strict reader, which names the bad field.
    """
    fast = _fast_movement(obj, account_id)
    return fast if fast is not None else _strict_movement(obj, account_id)


_TEXT_TYPES = frozenset({str, type(None)})


def _texts_ok(values: list[Any]) -> bool:
    """Whether every value is None or storable text under the cap, checked in bulk (C loops)."""
    if not _TEXT_TYPES.issuperset(map(type, values)):
        return False
    present = [v for v in values if v]
    if not present:
        return True
    if max(map(len, present)) > MAX_STRING:
        return False
    joined = "\x01".join(present)
    return "\x00" not in joined and (joined.isascii() or _encodable(joined))


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def _iso_or_none(value: str) -> datetime | None:
    """A parsed timestamp, or None if it is not one."""
    if len(value) > 64:
        return None
    try:
        return _parse_iso(value.strip())
    except (ValueError, OverflowError):
        return None


# Post dates repeat across a page (midnights): cached. Transaction dates are nearly all
# distinct: caching them only churned the cache (and scattered small objects over memory).
_cached_iso = lru_cache(maxsize=4096)(_iso_or_none)


_NO_PARTY: dict[str, Any] = {}


def _fast_party(value: object) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(party, institution) dicts of a sender/recipient ({} when absent), None if malformed."""
    if value is None:
        return _NO_PARTY, _NO_PARTY
    if type(value) is not dict:
        return None
    inst = value.get("institution")
    if inst is None:
        return value, _NO_PARTY
    if type(inst) is not dict or not inst.get("id"):
        return None
    return value, inst


def _fast_movement(obj: object, account_id: str) -> Movement | None:
    """The movement if every field is plainly valid, else None (the strict path decides)."""
    if type(obj) is not dict:
        return None
    get = obj.get
    mid, amount, post, tx, pending = (
        get("id"),
        get("amount"),
        get("post_date"),
        get("transaction_date"),
        get("pending"),
    )
    if type(amount) is not int or not INT64_MIN <= amount <= INT64_MAX:
        return None
    if (pending is not None and type(pending) is not bool) or type(post) is not str:
        return None
    sender, recipient = _fast_party(get("sender_account")), _fast_party(get("recipient_account"))
    if sender is None or recipient is None or type(mid) is not str or not mid.strip():
        return None
    if len(mid) > MAX_ID:
        return None
    (sp, si), (rp, ri) = sender, recipient
    values = [
        mid,
        get("currency"),
        get("description"),
        get("type"),
        get("status"),
        get("reference_id"),
        get("comment"),
        sp.get("holder_id"),
        sp.get("holder_name"),
        sp.get("number"),
        si.get("id"),
        rp.get("holder_id"),
        rp.get("holder_name"),
        rp.get("number"),
        ri.get("id"),
    ]
    extra = [si.get("name"), si.get("country"), ri.get("name"), ri.get("country")]
    if not _texts_ok(values + extra):
        return None
    post_date = _cached_iso(post)
    transaction_date = _iso_or_none(tx) if type(tx) is str else None
    if post_date is None or (tx is not None and transaction_date is None):
        return None
    s_inst = Institution(si["id"], si.get("name"), si.get("country")) if si else None
    r_inst = Institution(ri["id"], ri.get("name"), ri.get("country")) if ri else None
    return Movement(
        mid,
        account_id,
        amount,
        values[1],
        values[2],
        post_date,
        transaction_date,
        values[3],
        values[4],
        pending,
        values[5],
        values[6],
        values[7],
        values[8],
        values[9],
        values[10],
        values[11],
        values[12],
        values[13],
        values[14],
        s_inst,
        r_inst,
    )


def _strict_movement(obj: object, account_id: str) -> Movement:
    """The reader-based parse: slower, and its PayloadError names the object and field."""
    r = _Reader(obj, "movement")
    assert r.id is not None
    amount = r.integer("amount", required=True)
    post_date = r.timestamp("post_date")
    if post_date is None:
        r.fail("post_date", "an ISO-8601 timestamp", None)
    assert amount is not None and post_date is not None
    sender, recipient = _party(r.child("sender_account")), _party(r.child("recipient_account"))
    return Movement(
        id=r.id,
        account_id=account_id,
        amount=amount,
        currency=r.text("currency"),
        description=r.text("description"),
        post_date=post_date,
        transaction_date=r.timestamp("transaction_date"),
        type=r.text("type"),
        status=r.text("status"),
        pending=r.flag("pending"),
        reference_id=r.text("reference_id"),
        comment=r.text("comment"),
        sender_holder_id=sender.holder_id,
        sender_holder_name=sender.holder_name,
        sender_number=sender.number,
        sender_institution_id=sender.institution.id if sender.institution else None,
        recipient_holder_id=recipient.holder_id,
        recipient_holder_name=recipient.holder_name,
        recipient_number=recipient.number,
        recipient_institution_id=recipient.institution.id if recipient.institution else None,
        sender_institution=sender.institution,
        recipient_institution=recipient.institution,
    )


# ---------------------------------------------------------------- a page of movements, typed

# A movement page decoded straight into typed structs by msgspec (in C), with the same
# rules as the fast path above: what they cannot express (a NUL, a blank id, a timestamp
# that does not parse) sends the whole page back to the dict path, whose strict reader
# names the bad field. So the two paths accept exactly the same movements.
_Text = Annotated[str, msgspec.Meta(max_length=MAX_STRING)]
_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID)]
_Int64 = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]


# gc=False: these structs hold only text, numbers and each other (no cycles possible), and
# leaving them out of the cyclic GC halves the decode time of a page (a backfill makes
# hundreds of thousands of them).
class _WireInstitution(msgspec.Struct, gc=False):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_STRING)]
    name: _Text | None = None
    country: _Text | None = None


class _WireParty(msgspec.Struct, gc=False):
    holder_id: _Text | None = None
    holder_name: _Text | None = None
    number: _Text | None = None
    institution: _WireInstitution | None = None


class _WireMovement(msgspec.Struct, gc=False):
    id: _Id
    amount: _Int64
    post_date: Annotated[str, msgspec.Meta(max_length=MAX_STRING)]
    currency: _Text | None = None
    description: _Text | None = None
    transaction_date: _Text | None = None
    type: _Text | None = None
    status: _Text | None = None
    pending: bool | None = None
    reference_id: _Text | None = None
    comment: _Text | None = None
    sender_account: _WireParty | None = None
    recipient_account: _WireParty | None = None


_MOVEMENT_PAGE = msgspec.json.Decoder(list[_WireMovement])
_fromisoformat = datetime.fromisoformat
# tuple.__new__ builds the NamedTuple in C: its generated __new__ is Python code, and
# it was a fifth of the decode time of a page.
_new_movement = tuple.__new__
_MOVEMENT = Movement
# Institutions repeat on every page (a few dozen banks) and are immutable: share them.
_shared_institution = lru_cache(maxsize=1024)(Institution)
_NO_WIRE_PARTY = _WireParty()


def decode_movement_page(content: bytes, account_id: str) -> list[Movement] | None:
    """The movements of one page body, or None when the page needs the dict path.

    None for anything unusual (not valid JSON, a wrong type, a text too long, a NUL or a
    lone surrogate anywhere, a blank id, a bad timestamp): the caller then decodes the
    page generically and :func:`parse_movement` decides, naming the field.
    """
    if b"\\u0000" in content:  # a NUL in some string (or an escaped backslash before one)
        return None
    try:
        page = _MOVEMENT_PAGE.decode(content)
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return None
    out = []
    for w in page:
        post_date = _cached_iso(w.post_date)
        tx = w.transaction_date
        if tx is None:
            transaction_date = None
        else:
            # The common shape (…Z or +00:00) inline; anything else as _iso_or_none does.
            try:
                transaction_date = _fromisoformat(tx) if len(tx) <= 64 else None
            except ValueError:
                transaction_date = _iso_or_none(tx)
            else:
                if transaction_date is not None and transaction_date.tzinfo is not UTC:
                    transaction_date = _iso_or_none(tx)
            if transaction_date is None:
                return None
        if post_date is None:
            return None
        if not w.id.strip():
            return None
        sp = w.sender_account or _NO_WIRE_PARTY
        rp = w.recipient_account or _NO_WIRE_PARTY
        si, ri = sp.institution, rp.institution
        s_inst = _shared_institution(si.id, si.name, si.country) if si else None
        r_inst = _shared_institution(ri.id, ri.name, ri.country) if ri else None
        out.append(
            _new_movement(
                _MOVEMENT,
                (
                    w.id,
                    account_id,
                    w.amount,
                    w.currency,
                    w.description,
                    post_date,
                    transaction_date,
                    w.type,
                    w.status,
                    w.pending,
                    w.reference_id,
                    w.comment,
                    sp.holder_id,
                    sp.holder_name,
                    sp.number,
                    si.id if si else None,
                    rp.holder_id,
                    rp.holder_name,
                    rp.number,
                    ri.id if ri else None,
                    s_inst,
                    r_inst,
                ),
            )
        )
    return out
