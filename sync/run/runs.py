"""Run bookkeeping: a ``sync_runs`` row opened, kept alive by a lock, and closed once."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from models import SyncRun
from sync.run.context import Failure, describe
from sync.store.db import lock_key
from sync.text import safe_json, safe_text

log = logging.getLogger(__name__)

ABANDONED_MESSAGE = (
    "the process ended without closing this run (killed, or its database connection was lost)"
)


def run_lock_key(run_id: int) -> int:
    """The advisory-lock key a live run holds for its whole life."""
    return lock_key(f"fintoc-sync:run:{run_id}")


@dataclass
class RunLease:
    """A ``sync_runs`` row and the session advisory lock that says its process is alive.

    The row is inserted and the lock taken in one transaction, so no other process can
    see the row ``running`` without its lock. A process killed by SIGKILL (or whose
    connection the server dropped) loses the lock with its session; the next run to
    open finds that row unlocked and closes it as ``abandoned`` (close_abandoned_runs).
    """

    conn: Connection
    run_id: int

    @classmethod
    def open(cls, sessions: sessionmaker[Session], kind: str, now: datetime) -> RunLease:
        """Insert the run row (committed at once, so even a killed run is visible)."""
        bind = sessions.kw.get("bind")
        assert isinstance(bind, Engine), "the sessionmaker must be bound to an engine"
        # A connection of its own, detached from the pool: if it went back to the pool
        # holding the session lock (an unlock that failed, a lease never released), it
        # would carry the lock to whoever checks it out next. Closing it really closes it.
        conn = bind.connect()
        try:
            conn.detach()
            with Session(bind=conn) as session:
                row = SyncRun(kind=kind, started_at=now, status="running", errors=[])
                session.add(row)
                session.flush()
                run_id = row.id
                session.execute(text("SELECT pg_advisory_lock(:k)"), {"k": run_lock_key(run_id)})
                session.commit()
        except BaseException:
            conn.close()
            raise
        lease = cls(conn, run_id)
        try:
            abandoned = close_abandoned_runs(sessions, now)
        except Exception as exc:  # bookkeeping only: never a reason to fail the run
            log.warning("could not close abandoned runs: %s", describe(exc)[1][:200])
        else:
            if abandoned:
                log.warning("closed %d run(s) left running by a dead process", abandoned)
        return lease

    def release(self) -> None:
        """Drop the lock (the run row is closed) and the connection, whatever happens."""
        try:
            self.conn.rollback()  # a failed statement would refuse the unlock
            self.conn.execute(
                text("SELECT pg_advisory_unlock(:k)"), {"k": run_lock_key(self.run_id)}
            )
            self.conn.commit()
        except Exception:  # the connection may be gone, and the lock with it
            log.debug("run lock release failed; closing the session drops the lock")
        finally:
            self.conn.close()  # detached: the server ends the session and any lock in it


def close_abandoned_runs(sessions: sessionmaker[Session], now: datetime) -> int:
    """Mark ``running`` rows whose process no longer holds their lock as ``abandoned``."""
    closed = 0
    with sessions.begin() as session:
        running = session.scalars(select(SyncRun.id).where(SyncRun.status == "running")).all()
        for run_id in running:
            # Free only if nobody holds the run's session lock; released at commit.
            free = session.execute(
                text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": run_lock_key(run_id)}
            ).scalar()
            if free:
                session.execute(
                    update(SyncRun)
                    .where(SyncRun.id == run_id, SyncRun.status == "running")
                    .values(status="abandoned", finished_at=now, error_summary=ABANDONED_MESSAGE)
                )
                closed += 1
    return closed


#: ``sync_runs`` count columns a run may report (RunContext.counts keys).
COUNT_COLUMNS = (
    "links_total",
    "links_synced",
    "links_failed",
    "accounts_upserted",
    "snapshots_written",
    "transitions_written",
    "movements_upserted",
    "movements_changed",
    "movements_removed",
)


def close_run(
    sessions: sessionmaker[Session],
    lease: RunLease | None,
    run_id: int,
    *,
    status: str,
    finished_at: datetime,
    counts: Mapping[str, int],
    failures: Sequence[Failure],
) -> bool:
    """Write a run's outcome and release its lock, whatever happens; False if not written.

    The one place any run kind is closed. A row that cannot be written (the database is
    gone) stays ``running`` without its lock, and the next run closes it as abandoned.
    """
    # Failures are made safe where they are built; again here, because a run that
    # cannot be closed for its content would stay `running` forever.
    summary = safe_text("; ".join(f"{f.subject()}: {f.message}" for f in failures[:5]))
    errors = safe_json([f.as_json() for f in failures])
    values = {c: counts[c] for c in COUNT_COLUMNS if c in counts}
    try:
        with sessions.begin() as session:
            session.execute(
                update(SyncRun)
                .where(SyncRun.id == run_id)
                .values(
                    finished_at=finished_at,
                    status=status,
                    errors=errors,
                    error_summary=summary or None,
                    **values,
                )
            )
    except Exception as exc:  # the database may be what failed
        log.warning("could not close run %d: %s", run_id, describe(exc)[1][:200])
        return False
    finally:
        if lease is not None:
            lease.release()
    log.info("run %d finished: %s", run_id, status)
    return True
