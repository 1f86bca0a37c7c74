"""Movements: the incremental per-account sync and the batch writer it shares with backfill.

How a batch of movements is written (``write_batch``), all in the caller's transaction:

1. ``SELECT … FOR UPDATE`` the rows of the batch that already exist, in id order. The
   old values are read under that lock, so the change log cannot miss or invent a change
   (PostgreSQL 15 has no ``RETURNING OLD``).
2. The diff is computed in Python: new rows, changed rows and removed rows that came
   back are written with one ``INSERT … SELECT FROM unnest(…) ON CONFLICT (id) DO UPDATE
   … WHERE (…) IS DISTINCT FROM (…)``; unchanged rows are not sent at all (so not
   rewritten: their ``xmin`` stays).
3. One multi-row insert of ``movement_changes`` (kind ``updated`` or ``restored``).

Writers of one account (a sync and a backfill) are serialized by a transaction-level
advisory lock on the account: their batches span several statements, and row locks
taken in id order inside each batch would not stop two transactions from deadlocking
across batches.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from models import MovementChange
from sync.api import schemas
from sync.store.db import lock_key

log = logging.getLogger(__name__)

BATCH_ROWS = 1000

#: Columns compared to decide whether a movement changed, with their SQL array types.
TRACKED: dict[str, str] = {
    "account_id": "text",
    "amount": "bigint",
    "currency": "text",
    "description": "text",
    "post_date": "timestamptz",
    "transaction_date": "timestamptz",
    "type": "text",
    "status": "text",
    "pending": "boolean",
    "reference_id": "text",
    "comment": "text",
    "sender_holder_id": "text",
    "sender_holder_name": "text",
    "sender_number": "text",
    "sender_institution_id": "text",
    "recipient_holder_id": "text",
    "recipient_holder_name": "text",
    "recipient_number": "text",
    "recipient_institution_id": "text",
}
_COLS = list(TRACKED)
_SCHEMA_FIELDS = {f.name for f in fields(schemas.Movement)}
assert set(_COLS) <= _SCHEMA_FIELDS  # the parser and the table must agree


def _upsert_sql() -> Any:
    cols = ", ".join(_COLS)
    arrays = ", ".join(f"CAST(:{c} AS {t}[])" for c, t in TRACKED.items())
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLS)
    old = ", ".join(f"movements.{c}" for c in _COLS)
    new = ", ".join(f"EXCLUDED.{c}" for c in _COLS)
    # Column names come from TRACKED (constants), never from input.
    sql = f"""
        INSERT INTO fintoc.movements
            (id, {cols}, first_seen_at, last_seen_at, updated_at, removed_at)
        SELECT v.id, {", ".join("v." + c for c in _COLS)}, :now, :now, :now, NULL
        FROM unnest(CAST(:id AS text[]), {arrays}) AS v(id, {cols})
        ORDER BY v.id
        ON CONFLICT (id) DO UPDATE SET {sets},
            last_seen_at = EXCLUDED.last_seen_at, updated_at = EXCLUDED.updated_at,
            removed_at = NULL
        WHERE ({old}, movements.removed_at IS NULL) IS DISTINCT FROM ({new}, true)
        """  # noqa: S608
    return text(sql)


_UPSERT_SQL = _upsert_sql()
_LOCK_OLD_SQL = text(
    f"SELECT id, {', '.join(_COLS)}, removed_at FROM fintoc.movements "  # noqa: S608 (constant names)
    "WHERE id = ANY(CAST(:ids AS text[])) ORDER BY id FOR UPDATE"
)
_LOCK_GONE_SQL = text(
    """
    SELECT id, status, removed_at FROM fintoc.movements
    WHERE account_id = :account_id AND post_date >= :since AND post_date < :until
      AND removed_at IS NULL AND NOT (id = ANY(CAST(:seen AS text[])))
    ORDER BY id FOR UPDATE
    """
)
_MARK_GONE_SQL = text(
    "UPDATE fintoc.movements SET removed_at = :now, updated_at = :now "
    "WHERE id = ANY(CAST(:ids AS text[]))"
)
_CURSOR_SQL = text(
    """
    INSERT INTO fintoc.movement_cursors (account_id, synced_through, updated_at)
    VALUES (:account_id, :through, :now)
    ON CONFLICT (account_id) DO UPDATE
        SET synced_through = GREATEST(movement_cursors.synced_through, EXCLUDED.synced_through),
            updated_at = EXCLUDED.updated_at
        WHERE EXCLUDED.synced_through > movement_cursors.synced_through
    """
)


@dataclass
class WriteResult:
    """What writing movements did: rows written, change-log rows, soft deletions."""

    read: int = 0
    inserted: int = 0
    updated: int = 0
    changes: int = 0
    removed: int = 0

    @property
    def upserted(self) -> int:
        """Rows inserted or changed (unchanged rows are not counted: not rewritten)."""
        return self.inserted + self.updated

    def add(self, other: WriteResult) -> None:
        """Accumulate another result into this one."""
        self.read += other.read
        self.inserted += other.inserted
        self.updated += other.updated
        self.changes += other.changes
        self.removed += other.removed


# ---------------------------------------------------------------- pure helpers


def movement_row(mov: schemas.Movement) -> dict[str, Any]:
    """The tracked column values of a parsed movement."""
    return {c: getattr(mov, c) for c in _COLS}


def _json_value(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Names of the tracked columns whose value differs (in TRACKED order)."""
    return [c for c in _COLS if old.get(c) != new.get(c)]


def change_row(
    old: dict[str, Any], new: dict[str, Any], changed: Sequence[str], now: datetime
) -> dict[str, Any]:
    """A movement_changes row: ``restored`` if the old row was soft-deleted, else ``updated``."""
    names = list(changed)
    kind = "updated"
    if old.get("removed_at") is not None:
        kind, names = "restored", [*names, "removed_at"]
    merged_new = new | {"removed_at": None}
    return {
        "movement_id": new["id"],
        "account_id": new["account_id"],
        "kind": kind,
        "changed_fields": names,
        "old_values": {n: _json_value(old.get(n)) for n in names},
        "new_values": {n: _json_value(merged_new.get(n)) for n in names},
        "from_status": old.get("status"),
        "to_status": new.get("status"),
        "observed_at": now,
    }


def midnight(day: date) -> datetime:
    """The UTC midnight that starts ``day`` (a post_date)."""
    return datetime.combine(day, time(0), tzinfo=UTC)


# ---------------------------------------------------------------- the batch writer


def lock_account(session: Session, account_id: str) -> None:
    """Serialize movement writers of one account until the transaction ends."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(f"movements:{account_id}")}
    )


def write_batch(
    session: Session, movements: Iterable[schemas.Movement], now: datetime
) -> WriteResult:
    """Upsert a batch (≤ ~1000) of movements and log their changes; never commits."""
    rows = {m.id: movement_row(m) | {"id": m.id} for m in movements}
    ids = sorted(rows)
    result = WriteResult(read=len(rows))
    if not ids:
        return result
    found = session.execute(_LOCK_OLD_SQL, {"ids": ids}).mappings().all()
    old = {r["id"]: dict(r) for r in found}
    to_write: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    for mid in ids:
        new, before = rows[mid], old.get(mid)
        if before is None:
            to_write.append(new)
            result.inserted += 1
            continue
        changed = diff(before, new)
        if changed or before["removed_at"] is not None:
            to_write.append(new)
            changes.append(change_row(before, new, changed, now))
            result.updated += 1
    _upsert(session, to_write, now)
    if changes:
        session.execute(insert(MovementChange), changes)
    result.changes = len(changes)
    return result


def _upsert(session: Session, rows: Sequence[dict[str, Any]], now: datetime) -> None:
    if not rows:
        return
    params: dict[str, Any] = {c: [r[c] for r in rows] for c in ["id", *_COLS]}
    session.execute(_UPSERT_SQL, params | {"now": now})


def mark_missing_removed(
    session: Session,
    account_id: str,
    since: date,
    until: date,
    seen: Iterable[str],
    now: datetime,
) -> int:
    """Soft-delete stored movements with post_date in [since, until) that were not seen.

    Only call this after the window was read completely. Returns how many were removed.
    """
    params = {
        "account_id": account_id,
        "since": midnight(since),
        "until": midnight(until),
        "seen": sorted(seen),
    }
    gone = session.execute(_LOCK_GONE_SQL, params).mappings().all()
    if not gone:
        return 0
    session.execute(_MARK_GONE_SQL, {"ids": [g["id"] for g in gone], "now": now})
    session.execute(
        insert(MovementChange),
        [
            {
                "movement_id": g["id"],
                "account_id": account_id,
                "kind": "removed",
                "changed_fields": ["removed_at"],
                "old_values": {"removed_at": None},
                "new_values": {"removed_at": now.isoformat()},
                "from_status": g["status"],
                "to_status": g["status"],
                "observed_at": now,
            }
            for g in gone
        ],
    )
    return len(gone)


class MovementWriter:
    """Buffers parsed movements and writes them in batches; remembers the ids it saw.

    Seen ids are kept in a Python set (about 100 bytes each): fine for the few hundred
    thousand movements of a window or a backfill chunk.
    """

    def __init__(
        self, session: Session, account_id: str, now: datetime, batch_rows: int = BATCH_ROWS
    ) -> None:
        self.session, self.account_id, self.now = session, account_id, now
        self.batch_rows = batch_rows
        self.seen: set[str] = set()
        self.max_post_date: datetime | None = None
        self.result = WriteResult()
        self._buffer: list[schemas.Movement] = []

    def add(self, mov: schemas.Movement) -> None:
        """Queue one movement; writes a batch when the buffer is full."""
        self.seen.add(mov.id)
        if self.max_post_date is None or mov.post_date > self.max_post_date:
            self.max_post_date = mov.post_date
        self._buffer.append(mov)
        if len(self._buffer) >= self.batch_rows:
            self.flush()

    def add_payloads(self, objects: Iterable[object]) -> None:
        """Parse (``schemas.parse_movement``) and queue every API object."""
        for obj in objects:
            self.add(schemas.parse_movement(obj, self.account_id))

    def flush(self) -> None:
        """Write what is buffered."""
        if self._buffer:
            self.result.add(write_batch(self.session, self._buffer, self.now))
            self._buffer = []

    def reconcile(self, since: date, until: date) -> int:
        """Flush, then soft-delete what the complete read of [since, until) did not return."""
        self.flush()
        removed = mark_missing_removed(
            self.session, self.account_id, since, until, self.seen, self.now
        )
        self.result.removed += removed
        return removed


def advance_cursor(session: Session, account_id: str, through: date, now: datetime) -> None:
    """Move the account's cursor forward to ``through`` (never backwards)."""
    session.execute(_CURSOR_SQL, {"account_id": account_id, "through": through, "now": now})


def stored_cursor(session: Session, account_id: str) -> date | None:
    """The account's ``synced_through``, or None for a new account."""
    value = session.execute(
        text("SELECT synced_through FROM fintoc.movement_cursors WHERE account_id = :a"),
        {"a": account_id},
    ).scalar()
    return value if isinstance(value, date) else None
