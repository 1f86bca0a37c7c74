"""Fixes found by the chaos suite: run rows of dead processes, rejected tokens, Ctrl-C."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from models import SyncRun
from sync.run.backfill import Backfill
from sync.run.runs import RunLease, close_abandoned_runs
from sync.store import vault
from tests.run.conftest import Harness


def _statuses(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(SyncRun.status).order_by(SyncRun.id)))


def test_a_running_row_without_its_lock_is_closed_as_abandoned(
    harness: Harness, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    """A `running` row whose process died (no lock held) becomes `abandoned` at the next run."""
    with engine.begin() as conn:  # what a SIGKILLed process leaves behind
        conn.execute(
            text(
                "INSERT INTO fintoc.sync_runs (kind, started_at, status, errors, links_total,"
                " links_synced, links_failed, accounts_upserted, snapshots_written,"
                " transitions_written, movements_upserted, movements_changed, movements_removed)"
                " VALUES ('sync', now(), 'running', '[]', 0, 0, 0, 0, 0, 0, 0, 0, 0)"
            )
        )
    assert harness.sync().exit_code == 0
    assert _statuses(sessions) == ["abandoned", "succeeded"]


def test_a_live_run_is_never_marked_abandoned(
    harness: Harness, sessions: sessionmaker[Session]
) -> None:
    """A run whose process still holds its lease stays `running` while others start."""
    lease = RunLease.open(sessions, "backfill", harness.now())
    try:
        assert close_abandoned_runs(sessions, harness.now()) == 0
        assert harness.sync().exit_code == 0
        assert _statuses(sessions) == ["running", "succeeded"]
    finally:
        lease.release()


def test_a_token_rejected_before_first_seen_fails_once_then_runs_converge(
    harness: Harness,
) -> None:
    """A token of a link deleted before its first sync fails one run; later runs exit 0."""
    harness.sb.advance(days=2)  # link_Dd5fGh7JkL9zXc1V is deleted at +36 h
    with harness.sessions.begin() as session:
        session.execute(text("DELETE FROM fintoc.link_tokens WHERE link_id IS NOT NULL"))
    first = harness.sync()
    assert first.exit_code == 1
    assert [f.kind for f in first.failures] == ["LinkError"]
    assert harness.sync().exit_code == 0


def test_an_interrupted_backfill_closes_its_run_as_interrupted(
    harness: Harness, sessions: sessionmaker[Session]
) -> None:
    """Ctrl-C (KeyboardInterrupt) during a backfill closes its run row as `interrupted`."""
    assert harness.sync().exit_code == 0
    client = harness.client()
    calls = {"n": 0}
    real = client.iter_movement_pages

    def interrupting(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)  # type: ignore[arg-type]

    client.iter_movement_pages = interrupting  # type: ignore[method-assign]
    backfill = Backfill(client, sessions, vault.make_cipher(harness.fernet_key), clock=harness.now)
    with pytest.raises(KeyboardInterrupt):
        backfill.run(harness.today() - timedelta(days=60), harness.today(), chunk_days=10)
    assert _statuses(sessions)[-1] == "interrupted"
