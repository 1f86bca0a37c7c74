"""Run bookkeeping: a ``sync_runs`` row opened, kept alive by its session, and closed once."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, text, update
from sqlalchemy.orm import Session, sessionmaker

from models import SyncRun
from sync.run.context import Failure, describe
from sync.text import safe_json, safe_text

log = logging.getLogger(__name__)

ABANDONED_MESSAGE = (
    "the process ended without closing this run (killed, or its database connection was lost)"
)


_MARKER = "fintoc-sync run "


def run_marker(run_id: int) -> str:
    """The ``application_name`` of a live run's lease session."""
    return f"{_MARKER}{run_id}"


@dataclass
class RunLease:
    """A ``sync_runs`` row and the database session that says its process is alive.

    The row is inserted, and the session named after it (``application_name``,
    :func:`run_marker`), in one transaction, so no other process can see the row
    ``running`` without its session. A process killed by SIGKILL (or whose connection the
    server dropped) loses the session; the next run to open finds no such session and
    closes the row as ``abandoned`` (close_abandoned_runs).

    Not an advisory lock: ``pg_advisory_lock`` is executable by PUBLIC, and an analyst
    holding the next runs' keys made opening a run wait forever, stalling every cycle
    with no skip and no log. Any login may name its session after a run, so only a session
    of a role that may write ``sync_runs`` counts (docs/decisions/0008-sync-lock.md).
    """

    conn: Connection
    run_id: int

    @classmethod
    def open(cls, sessions: sessionmaker[Session], kind: str, now: datetime) -> RunLease:
        """Insert the run row (committed at once, so even a killed run is visible)."""
        bind = sessions.kw.get("bind")
        assert isinstance(bind, Engine), "the sessionmaker must be bound to an engine"
        # A connection of its own, detached from the pool: its name must not outlive the
        # run on a pooled connection. Closing it really closes it (and ends the session).
        conn = bind.connect()
        try:
            conn.detach()
            with Session(bind=conn) as session:
                row = SyncRun(kind=kind, started_at=now, status="running", errors=[])
                session.add(row)
                session.flush()
                run_id = row.id
                session.execute(
                    text("SELECT set_config('application_name', :name, false)"),
                    {"name": run_marker(run_id)},
                )
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
        """End the lease session (the run row is closed), whatever happens."""
        try:
            self.conn.rollback()
        except Exception:  # the connection may be gone, and the session with it
            log.debug("run lease rollback failed; closing the connection ends the session")
        finally:
            self.conn.close()  # detached: the server ends the session


# One statement: the rows and the sessions are read at the same moment, and a row is
# visible only once its session was named (same transaction). A session counts only if
# its role may write sync_runs: the analyst can name a session, not gain that privilege.
_ABANDON_SQL = text(
    """
    UPDATE fintoc.sync_runs r
    SET status = 'abandoned', finished_at = :now, error_summary = :message
    WHERE r.status = 'running' AND NOT EXISTS (
        SELECT 1 FROM pg_stat_activity a
        WHERE a.application_name = :marker || r.id
          AND has_table_privilege(a.usesysid, 'fintoc.sync_runs', 'UPDATE')
    )
    RETURNING r.id
    """
)


def close_abandoned_runs(sessions: sessionmaker[Session], now: datetime) -> int:
    """Mark ``running`` rows whose lease session is gone as ``abandoned``."""
    with sessions.begin() as session:
        params = {"now": now, "message": ABANDONED_MESSAGE, "marker": _MARKER}
        return len(session.execute(_ABANDON_SQL, params).all())


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
