"""Loaders: upserts, balance snapshots, status transitions. They take a session and never commit.

History rows are derived from the history itself, under the row lock that the
upsert takes: a link gets a transition when its newest recorded `to_status`
differs from what the API says now; an account gets a snapshot when its newest
snapshot differs from the balance the API says now. So a run killed after the
upsert but before the history write cannot happen (same transaction), a rerun
never writes the same change twice, and two writers racing on one row are
serialized by Postgres (ON CONFLICT DO UPDATE locks the conflicting row even when
its WHERE clause leaves it unchanged).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import CursorResult, Table, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from models import Account, Institution, Link
from sync.api import schemas
from sync.errors import PayloadError

# psycopg allows 65,535 parameters per statement; rows × columns must stay below.
BATCH_ROWS = 1000

T = TypeVar("T")


def chunked(items: Sequence[T], size: int = BATCH_ROWS) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most size items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _upsert(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    compare: Sequence[str],
    always: dict[str, Any] | None = None,
) -> int:
    """INSERT … ON CONFLICT (id) DO UPDATE … WHERE the compared columns differ.

    Returns how many rows were inserted or changed; unchanged rows are not rewritten.
    """
    if not rows:
        return 0
    # The rows go as parameters (SQLAlchemy's "insertmanyvalues"), not inside the
    # statement: a statement with its VALUES inlined is compiled anew on every call.
    stmt = insert(table)
    sets = {c: stmt.excluded[c] for c in compare} | (always or {})
    old = tuple(table.c[c] for c in compare)
    new = tuple(stmt.excluded[c] for c in compare)
    changed = _row(old).is_distinct_from(_row(new))
    upsert = stmt.on_conflict_do_update(index_elements=["id"], set_=sets, where=changed)
    counted = upsert.returning(table.c.id)  # RETURNING counts reliably (rowcount may be -1)
    written = 0
    for batch in chunked(rows):
        written += len(session.execute(counted, list(batch)).all())
    return written


def _row(cols: Sequence[Any]) -> Any:
    from sqlalchemy import tuple_

    return tuple_(*cols)


# ---------------------------------------------------------------- institutions and links

_LINK_FIELDS = (
    "institution_id",
    "holder_id",
    "holder_type",
    "username",
    "mode",
    "active",
    "status",
    "refresh_status",
    "created_at",
    "last_time_refreshed",
)


def upsert_institutions(session: Session, links: Iterable[schemas.Link], now: datetime) -> int:
    """Upsert the institutions embedded in links (deduplicated)."""
    seen: dict[str, schemas.Institution] = {}
    for link in links:
        if link.institution is not None:
            seen[link.institution.id] = link.institution
    # Many links share one institution, and ON CONFLICT DO UPDATE locks the row even when
    # nothing changes: every link transaction would then wait for the one before it (with
    # its movements) to commit. A plain read first leaves the unchanged ones unlocked;
    # institutions carry no history, so nothing depends on that lock.
    known = (
        {
            row.id: (row.name, row.country)
            for row in session.execute(
                select(Institution.id, Institution.name, Institution.country).where(
                    Institution.id.in_(list(seen))
                )
            )
        }
        if seen
        else {}
    )
    rows = [
        {
            "id": i.id,
            "name": i.name,
            "country": i.country,
            "first_seen_at": now,
            "last_seen_at": now,
        }
        for i in sorted(seen.values(), key=lambda i: i.id)
        if known.get(i.id) != (i.name, i.country)
    ]
    return _upsert(
        session,
        Institution.__table__,  # type: ignore[arg-type]
        rows,
        ["name", "country"],
        {"last_seen_at": now},
    )


def _link_row(link: schemas.Link, now: datetime) -> dict[str, Any]:
    row = {f: getattr(link, f) for f in _LINK_FIELDS if f != "institution_id"}
    row["institution_id"] = link.institution.id if link.institution else None
    return row | {"id": link.id, "first_seen_at": now, "last_seen_at": now, "deleted_at": None}


@dataclass
class LinksResult:
    """What upserting a list of links changed."""

    changed: int = 0
    transitions: int = 0
    deleted: int = 0


def upsert_links(
    session: Session,
    links: Sequence[schemas.Link],
    now: datetime,
    run_id: int | None,
    *,
    complete: bool = False,
) -> LinksResult:
    """Upsert links and their institutions; record status transitions.

    With complete=True the list is the whole organization: links missing from it
    get deleted_at (and a returning link loses it in the upsert).
    """
    # Sorted so that concurrent writers lock rows in the same order (no deadlock).
    ordered = sorted({link.id: link for link in links}.values(), key=lambda link: link.id)
    upsert_institutions(session, ordered, now)
    result = LinksResult()
    result.changed = _upsert(
        session,
        Link.__table__,  # type: ignore[arg-type]
        [_link_row(link, now) for link in ordered],
        [*_LINK_FIELDS, "deleted_at"],
        {"last_seen_at": now},
    )
    result.transitions = record_transitions(session, ordered, now, run_id)
    if complete:
        result.deleted = mark_missing_links_deleted(session, [link.id for link in ordered], now)
    return result


def touch_links(session: Session, link_ids: Sequence[str], now: datetime) -> None:
    """Set last_seen_at on links seen in this run (kept apart from the change upsert)."""
    for batch in chunked(link_ids, 10_000):
        session.execute(
            update(Link).where(Link.id.in_(batch)).values(last_seen_at=now),
            execution_options={"synchronize_session": False},
        )


_TRANSITIONS_SQL = text(
    """
    INSERT INTO fintoc.link_status_transitions
        (link_id, from_status, to_status, observed_at, sync_run_id)
    SELECT v.id, last.to_status, v.status, :now, :run_id
    FROM unnest(CAST(:ids AS text[]), CAST(:statuses AS text[])) AS v(id, status)
    LEFT JOIN LATERAL (
        SELECT t.to_status FROM fintoc.link_status_transitions t
        WHERE t.link_id = v.id ORDER BY t.id DESC LIMIT 1
    ) last ON true
    WHERE v.status IS NOT NULL AND last.to_status IS DISTINCT FROM v.status
    """
)


def record_transitions(
    session: Session, links: Sequence[schemas.Link], now: datetime, run_id: int | None
) -> int:
    """A transition row for each link whose status differs from its last recorded one."""
    written = 0
    for batch in chunked([link for link in links if link.status is not None]):
        params = {
            "ids": [link.id for link in batch],
            "statuses": [link.status for link in batch],
            "now": now,
            "run_id": run_id,
        }
        result: CursorResult[Any] = session.execute(_TRANSITIONS_SQL, params)  # type: ignore[assignment]
        written += result.rowcount or 0
    return written


def mark_missing_links_deleted(session: Session, present_ids: Sequence[str], now: datetime) -> int:
    """Soft-delete links that the complete list no longer has."""
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        text(
            "UPDATE fintoc.links SET deleted_at = :now "
            "WHERE deleted_at IS NULL AND NOT (id = ANY(CAST(:ids AS text[])))"
        ),
        {"now": now, "ids": list(present_ids)},
    )
    return result.rowcount or 0


# ---------------------------------------------------------------- accounts and balances

_ACCOUNT_FIELDS = (
    "link_id",
    "name",
    "official_name",
    "number",
    "type",
    "currency",
    "holder_id",
    "holder_name",
    "balance_available",
    "balance_current",
    "balance_limit",
    "refreshed_at",
    "next_refresh",
    "refresh_status",
    "removed_from_link",
)


@dataclass
class AccountsResult:
    """What loading one link's accounts changed."""

    upserted: int = 0
    snapshots: int = 0


def upsert_accounts(
    session: Session, accounts: Sequence[schemas.Account], now: datetime, run_id: int | None
) -> AccountsResult:
    """Upsert accounts (unchanged ones are not rewritten) and snapshot changed balances.

    An account id another live link already owns is refused (PayloadError for this link):
    otherwise the account would flip between the two links on every run, a new balance
    snapshot each time. The first owner keeps it; a deleted link's accounts may move.
    """
    ordered = sorted({a.id: a for a in accounts}.values(), key=lambda a: a.id)
    _refuse_accounts_of_other_links(session, ordered)
    rows = [
        {f: getattr(a, f) for f in _ACCOUNT_FIELDS}
        | {"id": a.id, "first_seen_at": now, "last_seen_at": now}
        for a in ordered
    ]
    result = AccountsResult()
    result.upserted = _upsert(
        session,
        Account.__table__,  # type: ignore[arg-type]
        rows,
        _ACCOUNT_FIELDS,
        {"last_seen_at": now},
    )
    result.snapshots = record_snapshots(session, ordered, now, run_id)
    return result


_OWNERS_SQL = text(
    """
    SELECT a.id, a.link_id FROM fintoc.accounts a JOIN fintoc.links l ON l.id = a.link_id
    WHERE a.id = ANY(CAST(:ids AS text[])) AND l.deleted_at IS NULL
    """
    # No row lock: FOR UPDATE here deadlocks with a backfill's foreign-key share locks.
    # Two links first reporting one new account in the same instant can still race; the
    # next run then refuses whichever did not win.
)


def _refuse_accounts_of_other_links(session: Session, accounts: Sequence[schemas.Account]) -> None:
    if not accounts:
        return
    found = session.execute(_OWNERS_SQL, {"ids": [a.id for a in accounts]}).all()
    owners: dict[str, str] = {str(i): str(link) for i, link in found}
    for account in accounts:
        owner = owners.get(account.id)
        if owner is not None and owner != account.link_id:
            raise PayloadError(
                f"account {account.id} is also reported by link {owner}, which had it first; "
                f"link {account.link_id} is not allowed to take it",
                field="accounts.id",
            )


_SNAPSHOTS_SQL = text(
    """
    INSERT INTO fintoc.balance_snapshots
        (account_id, observed_at, balance_available, balance_current, balance_limit,
         currency, sync_run_id)
    SELECT v.id, :now, v.available, v.current, v.lim, v.currency, :run_id
    FROM unnest(CAST(:ids AS text[]), CAST(:available AS bigint[]), CAST(:current AS bigint[]),
                CAST(:lim AS bigint[]), CAST(:currency AS text[]))
         AS v(id, available, current, lim, currency)
    LEFT JOIN LATERAL (
        SELECT s.balance_available, s.balance_current, s.balance_limit
        FROM fintoc.balance_snapshots s
        WHERE s.account_id = v.id ORDER BY s.id DESC LIMIT 1
    ) last ON true
    WHERE (last.balance_available, last.balance_current, last.balance_limit)
          IS DISTINCT FROM (v.available, v.current, v.lim)
       OR NOT EXISTS (SELECT 1 FROM fintoc.balance_snapshots s2 WHERE s2.account_id = v.id)
    """
)


def record_snapshots(
    session: Session, accounts: Sequence[schemas.Account], now: datetime, run_id: int | None
) -> int:
    """A snapshot row for each account whose balance differs from its newest snapshot."""
    written = 0
    for batch in chunked(accounts):
        params = {
            "ids": [a.id for a in batch],
            "available": [a.balance_available for a in batch],
            "current": [a.balance_current for a in batch],
            "lim": [a.balance_limit for a in batch],
            "currency": [a.currency for a in batch],
            "now": now,
            "run_id": run_id,
        }
        result: CursorResult[Any] = session.execute(_SNAPSHOTS_SQL, params)  # type: ignore[assignment]
        written += result.rowcount or 0
    return written
