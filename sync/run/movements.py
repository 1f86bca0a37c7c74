"""The incremental per-account movement sync (the pipeline's account hook)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session

from sync.api import schemas
from sync.run.context import Failure, RunContext, utc_now
from sync.store.movements import (
    BATCH_ROWS,
    Cursor,
    MovementWriter,
    WriteResult,
    advance_cursor,
    lock_account_cursor,
    lock_account_cursors,
)

log = logging.getLogger(__name__)


OWNER_CONFLICT = "MovementOwnerConflict"


def owner_conflict(link_id: str | None, account_id: str, result: WriteResult) -> Failure | None:
    """The failure to report when movements of the account belong to another account.

    A movement id that two accounts report stays with the account that had it first;
    the other account's copy is not written (the rest of its movements are).
    """
    n = result.owned_elsewhere
    if not n:
        return None
    sample = ", ".join(f"{mov} (account {owner})" for mov, owner in result.owners.items())
    more = ", …" if n > len(result.owners) else ""
    what = "movement is" if n == 1 else "movements are"
    message = (
        f"{n} {what} also reported by another account, which had it first: {sample}{more}; "
        f"account {account_id} is not allowed to take it (not written for this account)"
    )
    return Failure(link_id, OWNER_CONFLICT, message, account_id=account_id)


class MovementSource(Protocol):
    """What MovementSync and backfill need from the API client."""

    def iter_movement_rows(
        self,
        account_id: str,
        link_token: str,
        *,
        since: date | None = None,
        until: date | None = None,
        confirmed_only: bool = False,
    ) -> Iterable[schemas.Movement]: ...

    def iter_movement_pages(
        self,
        account_id: str,
        link_token: str,
        *,
        since: date | None = None,
        until: date | None = None,
        confirmed_only: bool = False,
    ) -> Iterable[list[schemas.Movement]]: ...


class MovementSync:
    """The pipeline's AccountHook: re-reads a look-back window of each account's movements.

    ``since`` is the cursor minus ``lookback_days`` (late postings land with old post
    dates), or ``today - initial_days`` for an account never synced. The whole window is
    read to now, upserted, reconciled (missing movements are soft-deleted) and only then
    is the cursor moved to today — all in the link's transaction, so a failure mid-account
    rolls everything back and the next run re-reads the same window.

    Fintoc's data of an account changes only when Fintoc refreshes it (``refreshed_at``
    moves), so an account whose ``refreshed_at`` is the one its last complete read saw is
    not read again — unless that read is older than ``full_read_every`` (the safety net),
    or the account has no ``refreshed_at`` at all.
    """

    def __init__(
        self,
        client: MovementSource,
        *,
        lookback_days: int = 7,
        initial_days: int = 30,
        full_read_every: timedelta = timedelta(hours=1),
        clock: Callable[[], datetime] = utc_now,
        batch_rows: int = BATCH_ROWS,
    ) -> None:
        self.client = client
        self.lookback_days, self.initial_days = lookback_days, initial_days
        self.full_read_every = full_read_every
        self.clock, self.batch_rows = clock, batch_rows

    def window_start(self, cursor: date | None, today: date) -> date:
        """Where the next read starts."""
        if cursor is None:
            return today - timedelta(days=self.initial_days)
        return min(cursor, today) - timedelta(days=self.lookback_days)

    def unchanged(self, cursor: Cursor | None, account: schemas.Account, now: datetime) -> bool:
        """Whether Fintoc has not refreshed the account since a recent complete read."""
        if cursor is None or account.refreshed_at is None or cursor.read_at is None:
            return False
        if now - cursor.read_at >= self.full_read_every:
            return False
        return cursor.source_refreshed_at == account.refreshed_at

    def __call__(
        self, session: Session, link_token: str, account: schemas.Account, run: RunContext
    ) -> None:
        """Sync one account's movements inside the link's transaction."""
        self._sync(session, link_token, account, run, lock_account_cursor(session, account.id))

    def sync_accounts(
        self,
        session: Session,
        link_token: str,
        accounts: Sequence[schemas.Account],
        run: RunContext,
    ) -> None:
        """Sync a link's accounts in turn, their cursors read (and rows locked) at once."""
        if not accounts:
            return
        cursors = lock_account_cursors(session, [a.id for a in accounts])
        for account in accounts:
            self._sync(session, link_token, account, run, cursors.get(account.id))

    def _sync(
        self,
        session: Session,
        link_token: str,
        account: schemas.Account,
        run: RunContext,
        cursor: Cursor | None,
    ) -> None:
        now = self.clock()
        today = now.date()
        if self.unchanged(cursor, account, now):
            run.add(movement_reads_skipped=1)
            log.debug("account %s: not refreshed since its last read; skipped", account.id)
            return
        since = self.window_start(cursor.synced_through if cursor else None, today)
        until = today + timedelta(days=1)
        writer = MovementWriter(session, account.id, now, self.batch_rows, (since, until))
        for mov in self.client.iter_movement_rows(account.id, link_token, since=since):
            writer.add(mov)
        writer.reconcile(since, until)
        advance_cursor(session, account.id, today, now, account.refreshed_at)
        r = writer.result
        conflict = owner_conflict(account.link_id, account.id, r)
        if conflict is not None:
            run.fail(conflict)
        run.add(
            movements_upserted=r.upserted, movements_changed=r.changes, movements_removed=r.removed
        )
        log.info(
            "account %s: %d movements read since %s, %d new, %d changed, %d removed",
            account.id,
            r.read,
            since.isoformat(),
            r.inserted,
            r.updated,
            r.removed,
        )
