"""The sync lock cannot be taken by the analyst, and skipped cycles are seen, not hidden."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from sync.api.client import RetryPolicy
from sync.app.daemon import SKIP_WARNING, Daemon
from sync.app.metrics import SyncMetrics
from sync.app.wiring import Wiring
from sync.config import Settings
from sync.run.runs import RunLease, close_abandoned_runs
from sync.sandbox import Sandbox
from sync.store import vault
from sync.store.db import lock_key, try_sync_lock

FAST_RETRY = RetryPolicy(max_attempts=2, base=0.01, cap=0.02)
NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def daemon(engine: Engine, db_url: str, sandbox: Sandbox, fernet_key: str) -> Daemon:
    """A daemon on the test database and the sandbox."""
    settings = Settings(
        database_url=db_url,
        secret_key=sandbox.secret_key,
        api_url=sandbox.url,
        encryption_key=fernet_key,
    )
    return Daemon(engine, Wiring(settings), SyncMetrics(), retry=FAST_RETRY)


@pytest.fixture
def analyst(engine: Engine, db_url: str) -> Iterator[Engine]:
    """An engine logged in as a real login role that is a member of fintoc_analyst."""
    role = f"alice_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN IN ROLE fintoc_analyst"))
    eng = create_engine(make_url(db_url).set(username=role, password=None))
    yield eng
    eng.dispose()
    with engine.begin() as conn:
        conn.execute(text(f"DROP ROLE {role}"))


def test_the_analyst_cannot_stop_the_sync(daemon: Daemon, analyst: Engine) -> None:
    """An analyst holding the old advisory key cannot take the sync lock; cycles still run."""
    with analyst.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_key("fintoc-sync:sync")})
        conn.commit()
        with pytest.raises(ProgrammingError, match="permission denied"):
            conn.execute(text("LOCK TABLE fintoc.sync_lock IN EXCLUSIVE MODE NOWAIT"))
        conn.rollback()
        assert daemon.cycle() in {"succeeded", "partial"}


def test_skips_in_a_row_warn_and_name_the_holder(
    daemon: Daemon, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """While another process holds the lock, each skip is counted; the third warns who holds it."""
    caplog.set_level(logging.INFO)
    with try_sync_lock(engine) as held:
        assert held is not None
        outcomes = [daemon.cycle() for _ in range(SKIP_WARNING)]
    assert outcomes == ["skipped"] * SKIP_WARNING
    assert daemon.metrics.value("fintoc_sync_runs_total", status="skipped") == SKIP_WARNING
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("held by role" in w and "fintoc-sync" in w for w in warnings)
    assert daemon.cycle() in {"succeeded", "partial"} and daemon.skips_in_a_row == 0


def test_health_turns_503_when_the_last_success_is_too_old() -> None:
    """Skipped cycles keep no daemon healthy: past max_age without a success, health fails."""
    now = [1000.0]
    metrics = SyncMetrics(clock=lambda: now[0], max_age=100)
    metrics.run_finished("succeeded", {}, 1.0)
    for _ in range(5):
        now[0] += 30
        metrics.cycle_skipped()
    health = metrics.health()
    assert not health.ok and "no successful cycle for 150s" in health.reason
    metrics.run_finished("partial", {}, 1.0)
    assert metrics.health().ok


@pytest.fixture
def no_endless_lock_waits(engine: Engine, db_url: str) -> Iterator[None]:
    """Lock waits on the test database give up after 5 s (a stalled sync fails, not hangs)."""
    name = make_url(db_url).database
    with engine.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" SET lock_timeout = 5000'))
        conn.commit()
    engine.dispose()  # connections made from here on have it
    yield


def test_the_analyst_cannot_stall_a_run_or_an_account_writer(
    daemon: Daemon,
    engine: Engine,
    sandbox: Sandbox,
    fernet_key: str,
    analyst: Engine,
    no_endless_lock_waits: None,
) -> None:
    """The analyst holding the advisory keys the sync once waited on (the next runs' leases,
    every account's movement writer) stalls nothing: cycles run and every account syncs;
    the writer's row lock is refused to the analyst."""
    with Session(engine) as session, session.begin():
        vault.add_tokens(session, vault.make_cipher(fernet_key), sandbox.link_tokens(), NOW)
    assert daemon.cycle() in {"succeeded", "partial"}
    with engine.connect() as conn:
        last = conn.execute(text("SELECT max(id) FROM fintoc.sync_runs")).scalar_one()
        accounts = list(conn.execute(text("SELECT id FROM fintoc.accounts")).scalars())
    assert len(accounts) > 10
    keys = [lock_key(f"fintoc-sync:run:{last + i}") for i in range(1, 6)]
    keys += [lock_key(f"movements:{a}") for a in accounts]
    with analyst.connect() as conn:
        for key in keys:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        conn.commit()
        with pytest.raises(ProgrammingError, match="permission denied"):
            conn.execute(text("SELECT 1 FROM fintoc.accounts FOR NO KEY UPDATE NOWAIT"))
        conn.rollback()
        assert daemon.cycle() in {"succeeded", "partial"}
    with engine.connect() as conn:
        run = conn.execute(
            text("SELECT status, errors::text FROM fintoc.sync_runs ORDER BY id DESC LIMIT 1")
        ).one()
    assert run[0] in {"succeeded", "partial"} and "lock" not in run[1]


def test_a_dead_run_is_abandoned_whatever_the_analyst_holds_or_calls_itself(
    engine: Engine, sessions: sessionmaker[Session], analyst: Engine
) -> None:
    """A run whose process is gone is closed as abandoned by the next run, even while the
    analyst holds its old advisory key and names a session after it; a live run is not."""
    now = datetime.now(UTC)
    dead = RunLease.open(sessions, "sync", now)
    pid = dead.conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    dead.conn.invalidate()  # the process is gone, and its session with it
    _wait_gone(engine, pid)
    with analyst.connect() as conn:
        conn.execute(
            text("SELECT pg_advisory_lock(:k)"), {"k": lock_key(f"fintoc-sync:run:{dead.run_id}")}
        )
        conn.execute(
            text("SELECT set_config('application_name', :n, false)"),
            {"n": f"fintoc-sync run {dead.run_id}"},
        )
        conn.commit()
        assert close_abandoned_runs(sessions, now) == 1
        live = RunLease.open(sessions, "sync", now)
        assert close_abandoned_runs(sessions, now) == 0
    with engine.connect() as conn:
        statuses = dict(conn.execute(text("SELECT id, status FROM fintoc.sync_runs")).all())
    assert statuses == {dead.run_id: "abandoned", live.run_id: "running"}
    live.release()


def _wait_gone(engine: Engine, pid: int) -> None:
    """Until the server has ended the session of backend ``pid`` (at most 10 s)."""
    query = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p")
    for _ in range(100):
        with engine.connect() as conn:
            if not conn.execute(query, {"p": pid}).scalar_one():
                return
        time.sleep(0.1)
    raise AssertionError(f"backend {pid} is still there")
