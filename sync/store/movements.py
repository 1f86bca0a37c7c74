"""Movements: the incremental per-account sync and the batch writer it shares with backfill.

How a batch of movements is written (``write_batch``), all in the caller's transaction:

1. The batch is COPYed into a temporary staging table.
2. New rows go in with ``INSERT … SELECT … ON CONFLICT DO NOTHING``. When every row of
   the batch was new (a backfill into an empty range) the batch ends here.
3. The stored rows that differ from the stage are found (one join, no lock; the rows
   just inserted equal it; an unchanged batch ends here). A row another account owns and
   still reports (``removed_at`` null) is an *owner conflict*: it is neither locked nor
   written, and the result names it, so the first owner keeps it instead of the movement
   flipping between two accounts on every run (a new ``movement_changes`` row each time).
4. The batch's own differing rows are ``SELECT … FOR UPDATE``d in id order and their old
   values read under that lock, so the change log cannot miss or invent a change
   (PostgreSQL 15 has no ``RETURNING OLD``); they are rewritten with one ``UPDATE … FROM``
   the stage; unchanged rows are not rewritten (their ``xmin`` stays). One multi-row
   insert of ``movement_changes`` (``updated`` or ``restored``).

A movement whose owner no longer reports it (soft-deleted there) may move: its new
account takes it and the change is logged as ``restored``.

Writers of one account (a sync, a backfill, a webhook) are serialized by a row lock on
the account (``lock_account``): their batches span several statements, and row locks
taken in id order inside each batch would not stop two transactions from deadlocking
across batches.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

import psycopg.errors
from sqlalchemy import RowMapping, insert, text
from sqlalchemy.orm import Session

from models import MovementChange
from sync.api import schemas

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
_SCHEMA_FIELDS = set(schemas.Movement._fields)
assert set(_COLS) <= _SCHEMA_FIELDS  # the parser and the table must agree
# ...in the same order, so a parsed movement's first fields are its staging row as they are
assert schemas.Movement._fields[: len(_COLS) + 1] == ("id", *_COLS)
_ROW_WIDTH = len(_COLS) + 1


# SQL fragments built once from the constant TRACKED (names and types, never input).
_COL_LIST = ", ".join(_COLS)
_STAGE = "fintoc_sync_movement_stage"
_STAGE_COLUMNS = ", ".join(f"{c} {t}" for c, t in TRACKED.items())
_M_COLS = ", ".join("m." + c for c in _COLS)
_S_COLS = ", ".join("s." + c for c in _COLS)
_SET_FROM_STAGE = ", ".join(f"{c} = s.{c}" for c in _COLS)
_STAGE_DDL = text(
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (id text PRIMARY KEY, {_STAGE_COLUMNS})"
)
_STAGE_CLEAR = text(f"TRUNCATE {_STAGE}")
_STAGE_COPY = f"COPY {_STAGE} (id, {_COL_LIST}) FROM STDIN (FORMAT BINARY)"
_STAGE_TYPES = ["text", *TRACKED.values()]
_DIFFERS = f"({_M_COLS}, m.removed_at IS NULL) IS DISTINCT FROM ({_S_COLS}, true)"
# Stored rows of the batch that differ from what the API sent now (or were soft-deleted),
# unlocked: which are ours to change, which another account owns (owner conflicts).
_DIFFERING_SQL = text(
    "SELECT m.id, m.account_id, m.removed_at FROM fintoc.movements m "  # noqa: S608 (constant names)
    f"JOIN {_STAGE} s ON s.id = m.id WHERE {_DIFFERS}"
)
# Those of them that are ours, with their old values, locked: the change log is computed
# from these under the lock (ownership is checked again under it).
_CHANGED_SQL = text(
    f"SELECT m.id, {_M_COLS}, m.removed_at FROM fintoc.movements m "  # noqa: S608 (constant names)
    f"JOIN {_STAGE} s ON s.id = m.id "
    f"WHERE m.id = ANY(CAST(:ids AS text[])) AND {_DIFFERS} "
    "AND (m.account_id = s.account_id OR m.removed_at IS NOT NULL) "
    "ORDER BY m.id FOR UPDATE OF m"
)
_INSERT_NEW_SQL = text(
    f"INSERT INTO fintoc.movements (id, {_COL_LIST}, first_seen_at, last_seen_at, "  # noqa: S608
    f"updated_at, removed_at) SELECT id, {_COL_LIST}, :now, :now, :now, NULL FROM {_STAGE} "
    "ON CONFLICT (id) DO NOTHING"
)
_UPDATE_CHANGED_SQL = text(
    f"UPDATE fintoc.movements m SET {_SET_FROM_STAGE}, "  # noqa: S608 (constant names)
    "last_seen_at = :now, updated_at = :now, removed_at = NULL "
    f"FROM {_STAGE} s WHERE s.id = m.id AND m.id = ANY(CAST(:ids AS text[]))"
)
_LOCK_GONE_SQL = text(
    """
    SELECT id, status, removed_at FROM fintoc.movements
    WHERE account_id = :account_id AND post_date >= :since AND post_date < :until
      AND removed_at IS NULL AND NOT (id = ANY(CAST(:seen AS text[])))
    ORDER BY id FOR UPDATE
    """
)
# The ids a writer has seen, server-side: filled from the staging table after each batch
# (no per-id work in Python), so "stored but not returned" is one anti-join.
_SEEN_DDL = text("CREATE TEMP TABLE IF NOT EXISTS fintoc_sync_movement_seen (id text PRIMARY KEY)")
_SEEN_CLEAR = text("TRUNCATE fintoc_sync_movement_seen")
_SEEN_FROM_STAGE = text(
    "INSERT INTO fintoc_sync_movement_seen SELECT id FROM fintoc_sync_movement_stage "
    "ON CONFLICT (id) DO NOTHING"
)
_LOCK_UNSEEN_SQL = text(
    """
    SELECT m.id, m.status, m.removed_at FROM fintoc.movements m
    WHERE m.account_id = :account_id AND m.post_date >= :since AND m.post_date < :until
      AND m.removed_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM fintoc_sync_movement_seen s WHERE s.id = m.id)
    ORDER BY m.id FOR UPDATE OF m
    """
)
_MARK_GONE_SQL = text(
    "UPDATE fintoc.movements SET removed_at = :now, updated_at = :now "
    "WHERE id = ANY(CAST(:ids AS text[]))"
)
_CURSOR_SQL = text(
    """
    INSERT INTO fintoc.movement_cursors
        (account_id, synced_through, updated_at, source_refreshed_at, read_at)
    VALUES (:account_id, :through, :now, :refreshed, :now)
    ON CONFLICT (account_id) DO UPDATE
        SET synced_through = GREATEST(movement_cursors.synced_through, EXCLUDED.synced_through),
            updated_at = CASE WHEN EXCLUDED.synced_through > movement_cursors.synced_through
                              THEN EXCLUDED.updated_at ELSE movement_cursors.updated_at END,
            source_refreshed_at = EXCLUDED.source_refreshed_at,
            read_at = EXCLUDED.read_at
        WHERE EXCLUDED.synced_through > movement_cursors.synced_through
           OR movement_cursors.source_refreshed_at IS DISTINCT FROM EXCLUDED.source_refreshed_at
           OR movement_cursors.read_at IS DISTINCT FROM EXCLUDED.read_at
    """
)


#: How many owner conflicts a result names (the count is always exact).
CONFLICT_SAMPLE = 5


@dataclass
class WriteResult:
    """What writing movements did: rows written, change-log rows, soft deletions, and the
    movements not written because another account owns them (``owned_elsewhere``, with
    up to CONFLICT_SAMPLE of them in ``owners``: movement id → owning account)."""

    read: int = 0
    inserted: int = 0
    updated: int = 0
    changes: int = 0
    removed: int = 0
    owned_elsewhere: int = 0
    owners: dict[str, str] = field(default_factory=dict)

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
        self.owned_elsewhere += other.owned_elsewhere
        for movement_id, owner in other.owners.items():
            if len(self.owners) < CONFLICT_SAMPLE:
                self.owners[movement_id] = owner


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


# FOR NO KEY UPDATE needs UPDATE on fintoc.accounts, which the analyst role lacks (an
# advisory lock, executable by PUBLIC, let any login stall a writer: ADR 0008). It does not
# conflict with the KEY SHARE locks that foreign keys to the account take.
_LOCK_ACCOUNT_SQL = text("SELECT 1 FROM fintoc.accounts WHERE id = :a FOR NO KEY UPDATE")


def lock_account(session: Session, account_id: str) -> None:
    """Serialize movement writers of one account until the transaction ends (a row lock on
    the account, which its writers store before they write its movements). An account not
    stored raises: no movement is ever written for one (movements have no foreign key)."""
    if session.execute(_LOCK_ACCOUNT_SQL, {"a": account_id}).first() is None:
        raise _not_stored(account_id)


# The lock above, whether [since, until) holds a live movement of the account, and, when
# asked and it holds none, synchronous_commit off for the rest of the transaction (SET
# LOCAL): one round trip where a backfill segment made three.
_LOCK_WINDOW_SQL = text(
    "SELECT s.live, CASE WHEN :quiet AND NOT s.live "
    "THEN set_config('synchronous_commit', 'off', true) END "
    "FROM (SELECT EXISTS (SELECT 1 FROM fintoc.movements m WHERE m.account_id = a.id "
    "AND m.post_date >= :since AND m.post_date < :until AND m.removed_at IS NULL) AS live "
    "FROM fintoc.accounts a WHERE a.id = :a FOR NO KEY UPDATE) AS s"
)


def lock_account_window(
    session: Session, account_id: str, since: date, until: date, *, quiet_commit: bool = False
) -> bool:
    """:func:`lock_account`, and whether the account has a live movement with post_date in
    [since, until) (pass it to MovementWriter as ``window_live``). ``quiet_commit``: if it
    has none, this transaction's commit does not wait for its WAL flush — only for a
    writer that will insert into days never loaded, which holds no history to lose."""
    params = {
        "a": account_id,
        "since": midnight(since),
        "until": midnight(until),
        "quiet": quiet_commit,
    }
    row = session.execute(_LOCK_WINDOW_SQL, params).first()
    if row is None:
        raise _not_stored(account_id)
    return bool(row[0])


def _not_stored(account_id: str) -> LookupError:
    return LookupError(f"account {account_id} is not stored: its movements cannot be written")


def write_batch(
    session: Session,
    movements: Iterable[schemas.Movement],
    now: datetime,
    *,
    probably_new: bool = False,
) -> WriteResult:
    """Upsert a batch of movements and log their changes; never commits.

    The batch is COPYed into a temporary staging table; new rows go in with one
    ``INSERT … SELECT … ON CONFLICT DO NOTHING``; only the stored rows that differ from
    the batch are read back (locked), rewritten and logged. An unchanged row costs no
    write (its ``xmin`` stays), and neither an all-new nor an all-unchanged batch sends
    a row to Python and back. A movement another account owns and still reports is not
    written: it is counted in ``owned_elsewhere`` (see the module docstring).

    ``probably_new`` (the account has no stored movement in the range being read): the
    batch is first COPYed straight into ``fintoc.movements`` in a savepoint (no staging
    table, no ``ON CONFLICT``), and only if an id is already stored (the savepoint is
    rolled back) does it take the staged path.
    """
    rows = {m.id: m for m in movements}
    result = WriteResult(read=len(rows))
    if not rows:
        return result
    if probably_new and _copy_new(session, rows.values(), now):
        result.inserted = len(rows)
        return result
    _stage(session, rows.values())
    result.inserted = session.execute(_INSERT_NEW_SQL, {"now": now}).rowcount or 0  # type: ignore[attr-defined]
    if result.inserted == len(rows):
        return result  # all new (a backfill into an empty range): nothing stored differs
    # The rows just inserted equal the stage, so what differs is what was stored before.
    ours = _differing_rows_we_own(session, rows, result)
    changed: Sequence[RowMapping] = []
    if ours:
        changed = session.execute(_CHANGED_SQL, {"ids": ours}).mappings().all()
    changes = []
    for found in changed:
        old = dict(found)
        new = movement_row(rows[old["id"]]) | {"id": old["id"]}
        changes.append(change_row(old, new, diff(old, new), now))
    if changed:
        ids = [old["id"] for old in changed]
        session.execute(_UPDATE_CHANGED_SQL, {"ids": ids, "now": now})
        session.execute(insert(MovementChange), changes)
    result.updated = result.changes = len(changes)
    return result


def _differing_rows_we_own(
    session: Session, rows: dict[str, schemas.Movement], result: WriteResult
) -> list[str]:
    """Ids of the stored rows that differ from the staged batch and are the batch's to
    change, sorted; the ones another account owns and still reports go to ``result``."""
    ours = []
    for movement_id, owner, removed_at in session.execute(_DIFFERING_SQL).all():
        if owner != rows[movement_id].account_id and removed_at is None:
            result.owned_elsewhere += 1
            if len(result.owners) < CONFLICT_SAMPLE:
                result.owners[movement_id] = owner
        else:
            ours.append(movement_id)
    return sorted(ours)


def _stage(session: Session, movements: Iterable[schemas.Movement]) -> None:
    """COPY the batch into this connection's staging table (emptied first)."""
    session.execute(_STAGE_DDL)
    session.execute(_STAGE_CLEAR)
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(_STAGE_COPY) as copy:
        copy.set_types(_STAGE_TYPES)  # binary COPY: about twice as fast as text here
        for mov in movements:
            copy.write_row(mov[:_ROW_WIDTH])


_DIRECT_COPY = (
    f"COPY fintoc.movements (id, {_COL_LIST}, first_seen_at, last_seen_at, updated_at) "
    "FROM STDIN (FORMAT BINARY)"
)
_DIRECT_TYPES = [*_STAGE_TYPES, "timestamptz", "timestamptz", "timestamptz"]


def _copy_new(session: Session, movements: Iterable[schemas.Movement], now: datetime) -> bool:
    """COPY the batch into ``fintoc.movements`` as new rows; False, with nothing written
    (the savepoint rolled back), when one of its ids is already stored."""
    raw = session.connection().connection.driver_connection
    assert raw is not None
    stamps = (now, now, now)
    with raw.cursor() as cursor:
        # The savepoint is issued on the driver's cursor: SQLAlchemy's begin_nested()
        # emits SAVEPOINT only when it hands out the connection itself, which it does
        # not here.
        cursor.execute("SAVEPOINT direct_copy")
        try:
            with cursor.copy(_DIRECT_COPY) as copy:
                copy.set_types(_DIRECT_TYPES)
                for mov in movements:
                    copy.write_row(mov[:_ROW_WIDTH] + stamps)
        except psycopg.errors.UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT direct_copy")
            cursor.execute("RELEASE SAVEPOINT direct_copy")
            return False
        cursor.execute("RELEASE SAVEPOINT direct_copy")
    return True


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
    return _mark_gone(session, account_id, gone, now)


def _mark_gone(session: Session, account_id: str, gone: Sequence[Any], now: datetime) -> int:
    """Soft-delete the locked rows ``gone`` and log each removal."""
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


_ANY_LIVE_SQL = text(
    "SELECT EXISTS (SELECT 1 FROM fintoc.movements WHERE account_id = :a "
    "AND post_date >= :since AND post_date < :until AND removed_at IS NULL)"
)


def _any_live(session: Session, account_id: str, since: date, until: date) -> bool:
    """Whether the account has a movement not soft-deleted with post_date in [since, until)."""
    params = {"a": account_id, "since": midnight(since), "until": midnight(until)}
    return bool(session.execute(_ANY_LIVE_SQL, params).scalar())


class StreamConflict(Exception):
    """A streamed COPY met an id already stored or repeated in the read: nothing of it
    was written, and the transaction it ran in must be rolled back."""


class _StreamedCopy:
    """One ``COPY fintoc.movements … FROM STDIN`` open across many ``write`` calls."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session, self.stamps = session, (now, now, now)
        self.rows = 0
        self.conflict: str | None = None
        self._cursor: Any = None
        self._context: Any = None
        self._copy: Any = None

    def write(self, mov: schemas.Movement) -> None:
        if self._copy is None and self.conflict is None:
            self._open()
        elif self.conflict is not None:
            return  # the COPY already failed: the read goes on only to find its end
        try:
            self._copy.write_row(mov[:_ROW_WIDTH] + self.stamps)
        except psycopg.errors.UniqueViolation as exc:  # the server's error, seen early
            self.abort(exc)
            self.conflict = str(exc).splitlines()[0]
            return
        self.rows += 1

    def write_page(self, movs: Sequence[schemas.Movement]) -> None:
        """:meth:`write` for each movement, in one loop."""
        if self._copy is None and self.conflict is None:
            self._open()
        elif self.conflict is not None:
            return
        write_row, stamps, sent = self._copy.write_row, self.stamps, 0
        try:
            for mov in movs:
                write_row(mov[:_ROW_WIDTH] + stamps)
                sent += 1
        except psycopg.errors.UniqueViolation as exc:
            self.abort(exc)
            self.conflict = str(exc).splitlines()[0]
        self.rows += sent

    def _open(self) -> None:
        raw = self.session.connection().connection.driver_connection
        assert raw is not None
        self._cursor = raw.cursor()
        self._context = self._cursor.copy(_DIRECT_COPY)
        self._copy = self._context.__enter__()
        self._copy.set_types(_DIRECT_TYPES)

    def finish(self) -> WriteResult:
        """End the COPY: the rows are in (or StreamConflict, with none of them in)."""
        if self._context is not None:
            try:
                self._context.__exit__(None, None, None)
            except psycopg.errors.UniqueViolation as exc:
                self.conflict = str(exc).splitlines()[0]
            self._close()
        if self.conflict is not None:
            raise StreamConflict(self.conflict)
        return WriteResult(read=self.rows, inserted=self.rows)

    def abort(self, exc: BaseException | None) -> None:
        if self._context is not None:
            # CopyFail: the server drops what was sent; psycopg swallows the QueryCanceled
            # that answers it, and a broken connection is the caller's error already.
            failure = exc or RuntimeError("the read stopped")
            try:
                self._context.__exit__(type(failure), failure, None)
            except Exception:
                log.debug("ending an aborted COPY failed", exc_info=True)
            self._close()

    def _close(self) -> None:
        self._context = self._copy = None
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None


class MovementWriter:
    """Buffers parsed movements and writes them in batches; the ids it saw are kept
    server-side (for ``reconcile``), so nothing of a written batch stays in Python: an
    id kept past its batch would pin the allocator pools of its page.
    """

    def __init__(
        self,
        session: Session,
        account_id: str,
        now: datetime,
        batch_rows: int = BATCH_ROWS,
        window: tuple[date, date] | None = None,
        *,
        stream: bool = False,
        window_live: bool | None = None,
    ) -> None:
        """``window``: the [since, until) that ``reconcile`` will be given (or a range
        around it). When the account has no live stored movement there — a first read,
        a backfill of a range never loaded — nothing can be missing from the read, so the
        ids seen are not tracked server-side and ``reconcile`` has nothing to do. The
        caller must hold the account's lock (``lock_account``): no other writer can add
        the account's rows meanwhile.

        ``stream`` (with such an empty window): no batches at all. One COPY into
        ``fintoc.movements`` stays open for the whole read and each added movement is sent
        at once, so Postgres inserts while the next page is fetched and nothing parsed is
        held in Python. If an id turns out to be stored already (another account's) or
        repeated in the read, the rest of the read is only counted, ``reconcile`` raises
        :class:`StreamConflict` and nothing of the COPY is written: the caller rolls its
        transaction back and reads the window again without ``stream``. Anything else
        raised mid-read: call ``abort`` before the transaction rolls back.

        ``window_live``: whether the window holds a live movement, when the caller already
        asked (:func:`lock_account_window`); None asks here."""
        self.session, self.account_id, self.now = session, account_id, now
        self.batch_rows = batch_rows
        self.added = 0  # movements queued so far (a repeated id counts again)
        self.result = WriteResult()
        self._buffer: list[schemas.Movement] = []
        if window is not None and window_live is None:
            window_live = _any_live(session, account_id, *window)
        empty = window is not None and not window_live
        self._empty_window = window if empty else None
        # Try the direct COPY while batches turn out all new; one that met a stored id
        # (another account's, say) sends the rest of this read to the staged path at once.
        self._direct = empty
        # stream: one COPY open for the whole read, each movement sent as it is added.
        self._stream: _StreamedCopy | None = (
            _StreamedCopy(session, now) if stream and empty else None
        )
        if self._empty_window is None:
            session.execute(_SEEN_DDL)
            session.execute(_SEEN_CLEAR)

    @property
    def streaming(self) -> bool:
        """Whether movements go straight into one open COPY (see ``stream``)."""
        return self._stream is not None

    def add(self, mov: schemas.Movement) -> None:
        """Queue one movement; writes a batch when the buffer is full."""
        self.added += 1
        if self._stream is not None:
            self._stream.write(mov)
            return
        self._buffer.append(mov)
        if len(self._buffer) >= self.batch_rows:
            self.flush()

    def add_page(self, movs: Sequence[schemas.Movement]) -> None:
        """:meth:`add` each movement of a page (a streamed COPY takes them in one call)."""
        if self._stream is not None:
            self.added += len(movs)
            self._stream.write_page(movs)
            return
        for mov in movs:
            self.add(mov)

    def abort(self, exc: BaseException | None = None) -> None:
        """End an open streamed COPY without writing it (the caller's transaction is
        about to roll back); a no-op otherwise. Call it when anything raises mid-read."""
        if self._stream is not None:
            self._stream.abort(exc)

    def add_payloads(self, objects: Iterable[object]) -> None:
        """Parse (``schemas.parse_movement``) and queue every API object."""
        for obj in objects:
            self.add(schemas.parse_movement(obj, self.account_id))

    def flush(self) -> None:
        """Write what is buffered (a streamed COPY is ended: the read is over)."""
        if self._stream is not None:
            self.result.add(self._stream.finish())
            self._stream = None
            return
        if self._buffer:
            batch = write_batch(self.session, self._buffer, self.now, probably_new=self._direct)
            self._direct = self._direct and batch.inserted == batch.read
            self.result.add(batch)
            if self._empty_window is None:
                self.session.execute(_SEEN_FROM_STAGE)  # the stage still holds this batch
            self._buffer = []

    def reconcile(self, since: date, until: date) -> int:
        """Flush, then soft-delete what the complete read of [since, until) did not return."""
        self.flush()
        if self._empty_window is not None:
            start, end = self._empty_window
            if not start <= since <= until <= end:
                raise ValueError(f"reconcile({since}, {until}) is outside the writer's window")
            return 0  # nothing was stored there before this read: nothing is missing
        params = {
            "account_id": self.account_id,
            "since": midnight(since),
            "until": midnight(until),
        }
        gone = self.session.execute(_LOCK_UNSEEN_SQL, params).mappings().all()
        removed = _mark_gone(self.session, self.account_id, gone, self.now)
        self.result.removed += removed
        return removed


def advance_cursor(
    session: Session,
    account_id: str,
    through: date,
    now: datetime,
    refreshed_at: datetime | None = None,
) -> None:
    """After a complete read: move the cursor forward to ``through`` (never backwards) and
    remember the account's ``refreshed_at`` at that read and the read's time."""
    params = {"account_id": account_id, "through": through, "now": now, "refreshed": refreshed_at}
    session.execute(_CURSOR_SQL, params)


@dataclass(frozen=True)
class Cursor:
    """How far an account's movements were read, and the refresh that read saw."""

    synced_through: date
    source_refreshed_at: datetime | None
    read_at: datetime | None


_LOCK_AND_CURSOR_SQL = text(
    "SELECT c.synced_through, c.source_refreshed_at, c.read_at "
    "FROM fintoc.accounts a LEFT JOIN fintoc.movement_cursors c ON c.account_id = a.id "
    "WHERE a.id = :a FOR NO KEY UPDATE OF a"
)


def lock_account_cursor(session: Session, account_id: str) -> Cursor | None:
    """``lock_account``, then the account's cursor row (None for an account never read),
    in one round trip: the sync's start of every account."""
    row = session.execute(_LOCK_AND_CURSOR_SQL, {"a": account_id}).one_or_none()
    if row is None:
        raise _not_stored(account_id)
    if row[0] is None:
        return None
    return Cursor(row[0], row[1], row[2])


_LOCK_AND_CURSORS_SQL = text(
    "SELECT a.id, c.synced_through, c.source_refreshed_at, c.read_at "
    "FROM fintoc.accounts a LEFT JOIN fintoc.movement_cursors c ON c.account_id = a.id "
    "WHERE a.id = ANY(CAST(:ids AS text[])) ORDER BY a.id FOR NO KEY UPDATE OF a"
)


def lock_account_cursors(session: Session, account_ids: Sequence[str]) -> dict[str, Cursor]:
    """:func:`lock_account_cursor` for several accounts in one round trip (locked in id
    order); accounts never read are absent from the result."""
    rows = session.execute(_LOCK_AND_CURSORS_SQL, {"ids": list(account_ids)}).all()
    missing = set(account_ids) - {row[0] for row in rows}
    if missing:
        raise _not_stored(min(missing))
    return {row[0]: Cursor(row[1], row[2], row[3]) for row in rows if row[1] is not None}


def stored_cursor(session: Session, account_id: str) -> date | None:
    """The account's ``synced_through``, or None for a new account."""
    value = session.execute(
        text("SELECT synced_through FROM fintoc.movement_cursors WHERE account_id = :a"),
        {"a": account_id},
    ).scalar()
    return value if isinstance(value, date) else None
