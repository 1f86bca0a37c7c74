"""Lazily generated movements: a pure function of (seed, account, day).

A movement's whole life is decided when it is generated: when it becomes visible
(``available_at``; late postings become visible days after their ``post_date``), when a
pending check resolves and how, and whether the bank later removes it. Its state at any
clock time is then computed, never stored, so millions of movements cost no memory
beyond a bounded cache of generated days.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from random import Random
from typing import Any

from sync.sandbox import _rand
from sync.sandbox.catalog import INSTITUTIONS
from sync.sandbox.clock import fmt_ts, midnight
from sync.sandbox.model import Account

_PEOPLE = [
    ("123456785", "Fintoc SpA"),
    ("98765432K", "Catalina Núñez Ibáñez"),
    ("154443332", "Ignacio Peña 🚀"),
    ("761234567", "Inmobiliaria Los Álamos Ltda."),
    ("112223334", "Rodrigo Cáceres"),
]
_PURCHASES = [
    "Compra Líder Ñuñoa",
    "Compra Jumbo Costanera",
    "Pago Servipag",
    "Giro cajero automático",
    "Comisión mantención cuenta",
    "Pago automático tarjeta de crédito",
    "Depósito en efectivo",
    "Compra Starbucks ☕",
    "Intereses línea de crédito",
    "Pago PAC Entel",
]


@dataclass(frozen=True, slots=True)
class Movement:
    """A generated movement with its whole future decided up front."""

    id: str
    account_id: str
    day: date
    seq: int
    amount: int
    currency: str
    description: str
    comment: str | None
    reference_id: str | None
    type: str
    millis: bool
    transaction_date: str | None
    sender: dict[str, Any] | None
    recipient: dict[str, Any] | None
    available_at: datetime
    resolve_at: datetime | None
    final_status: str
    removed_at: datetime | None

    def visible(self, now: datetime) -> bool:
        """Whether the API serves it at ``now`` (arrived and not removed)."""
        removed = self.removed_at is not None and self.removed_at <= now
        return self.available_at <= now and not removed

    def status(self, now: datetime) -> str:
        """``pending`` until a check resolves, then its final status."""
        if self.resolve_at is not None and now < self.resolve_at:
            return "pending"
        return self.final_status

    def to_json(self, now: datetime) -> dict[str, Any]:
        """The Fintoc Movement object as served at ``now``."""
        status = self.status(now)
        return {
            "id": self.id,
            "object": "movement",
            "amount": self.amount,
            "comment": self.comment,
            "currency": self.currency,
            "description": self.description,
            "pending": status == "pending",
            "post_date": fmt_ts(midnight(self.day), millis=self.millis),
            "recipient_account": self.recipient,
            "reference_id": self.reference_id,
            "sender_account": self.sender,
            "status": status,
            "transaction_date": self.transaction_date,
            "type": self.type,
        }


class MovementSource:
    """Generates movements on demand, caching a bounded number of account-days.

    The cache is process-wide: a day's movements depend only on (seed, account, day),
    so sandboxes with the same seed (a test suite starts many) share the work.
    """

    _cache: OrderedDict[tuple[int, str, date], tuple[Movement, ...]] = OrderedDict()
    _cache_days = 20_000  # the whole default org fits (16 accounts x 400 days)
    _lock = threading.Lock()

    @classmethod
    def reserve(cls, days: int) -> None:
        """Keep at least ``days`` account-days cached (a large org served from memory)."""
        with cls._lock:
            cls._cache_days = max(cls._cache_days, days)

    @classmethod
    def clear_cache(cls) -> None:
        """Forget every generated day (tests use it to prove regeneration is identical)."""
        with cls._lock:
            cls._cache.clear()

    def __init__(self, seed: int, epoch: datetime) -> None:
        self._seed = seed
        self._epoch = epoch
        #: Movement id → scripted removal time (the catalog's guaranteed removals).
        self.removals: dict[str, datetime] = {}

    def day(self, account: Account, day: date) -> tuple[Movement, ...]:
        """All movements ever generated for ``account`` on ``day``, oldest first."""
        key = (self._seed, account.id, day)
        with self._lock:
            made = self._cache.get(key)
            if made is not None:
                self._cache.move_to_end(key)
        if made is None:
            made = tuple(self._generate(account, day))
            with self._lock:
                self._cache[key] = made
                if len(self._cache) > self._cache_days:
                    self._cache.popitem(last=False)
        if not self.removals:
            return made
        return tuple(self._scripted(m) for m in made)

    def _scripted(self, movement: Movement) -> Movement:
        removed_at = self.removals.get(movement.id)
        return movement if removed_at is None else replace(movement, removed_at=removed_at)

    def newest_first(self, account: Account, first: date, last: date) -> Iterator[Movement]:
        """Movements posted in ``[first, last]``, by post_date then sequence, descending."""
        first = max(first, account.history_start)
        day = last
        while day >= first:
            yield from reversed(self.day(account, day))
            day -= timedelta(days=1)

    def _generate(self, account: Account, day: date) -> Iterator[Movement]:
        r = _rand.rng(self._seed, "day", account.id, day.toordinal())
        count = math.floor(2 * account.rate * r.random() + r.random())
        for seq in range(count):
            movement = _make(r, self._seed, account, day, seq)
            # A movement the bank removed before the clock started never existed for us.
            if movement.removed_at is None or movement.removed_at > self._epoch:
                yield movement


def _make(r: Random, seed: int, account: Account, day: date, seq: int) -> Movement:
    kind = r.choices(["in", "out", "other", "check"], [0.25, 0.25, 0.44, 0.06])[0]
    amount = _amount(r, kind)
    available = midnight(day) + timedelta(hours=r.uniform(1, 23))
    if r.random() < 0.03:  # late posting: shows up days after its post_date
        available = midnight(day) + timedelta(days=r.uniform(3, 8))
    resolve_at, final = None, "confirmed"
    if kind == "check":
        resolve_at = available + timedelta(hours=r.uniform(12, 60))
        final = "reversed" if r.random() < 0.2 else "confirmed"
    elif r.random() < 0.01:
        final = "duplicated"
    # The bank deletes ~3% of movements within days; those deleted before the clock
    # started are skipped by the caller, the rest vanish as the clock advances.
    removed_at = available + timedelta(days=r.uniform(0.5, 4)) if r.random() < 0.03 else None
    prefix = "" if not account.id.startswith("acc_") else "mov_"
    counterparty = _transfer_account(r)
    return Movement(
        id=prefix + _rand.ident(seed, "mov", account.id, day.toordinal(), seq),
        account_id=account.id,
        day=day,
        seq=seq,
        amount=amount,
        currency=account.currency,
        description=_description(r, kind, counterparty),
        comment=r.choice(["Pago factura 198", "Arriendo ñandú", "🎉 cumpleaños", None])
        if kind in ("in", "out")
        else None,
        reference_id=None if r.random() < 0.2 else str(r.randint(10_000, 999_999_999)),
        type={"in": "transfer", "out": "transfer", "check": "check"}.get(kind, "other"),
        millis=r.random() < 0.5,
        transaction_date=_transaction_date(r, day),
        sender=counterparty if kind == "in" else None,
        recipient=counterparty if kind == "out" else None,
        available_at=available,
        resolve_at=resolve_at,
        final_status=final,
        removed_at=removed_at,
    )


def _amount(r: Random, kind: str) -> int:
    exponent = r.uniform(2, 7) if r.random() > 0.002 else r.uniform(10, 12)
    value = max(1, int(10**exponent))
    outgoing = kind == "out" or (kind == "other" and r.random() < 0.7)
    if kind == "check":
        outgoing = r.random() < 0.5
    return -value if outgoing else value


def _transfer_account(r: Random) -> dict[str, Any]:
    holder_id, holder_name = r.choice(_PEOPLE)
    inst = r.choice(list(INSTITUTIONS.values()))
    institution = None if r.random() < 0.05 else {"id": inst.id, "name": inst.name, "country": "cl"}
    number = None if r.random() < 0.1 else str(r.randint(1_000_000, 99_999_999_999))
    return {
        "holder_id": holder_id,
        "holder_name": holder_name,
        "institution": institution,
        "number": number,
    }


def _description(r: Random, kind: str, counterparty: dict[str, Any]) -> str:
    if kind == "in":
        return f"Traspaso de:{counterparty['holder_name']}"
    if kind == "out":
        return f"Traspaso a:{counterparty['holder_name']}"
    if kind == "check":
        return f"Cheque N° {r.randint(1000, 9999999)}"
    return r.choice(_PURCHASES)


def _transaction_date(r: Random, day: date) -> str | None:
    if r.random() < 0.4:
        return None
    # Usually the same day; a late-evening operation may post the next day.
    moment = midnight(day) + timedelta(hours=r.uniform(-6, 23))
    return fmt_ts(moment.replace(microsecond=r.randint(0, 999) * 1000), millis=r.random() < 0.7)
