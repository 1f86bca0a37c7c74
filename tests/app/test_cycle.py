"""Daemon cycles in-process: failures are logged and the schedule goes on; reconnects."""

from __future__ import annotations

import logging
import threading

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from sync.api.client import RetryPolicy
from sync.app.daemon import Daemon, build_scheduler, make_trigger, stop_daemon
from sync.app.metrics import SyncMetrics
from sync.app.wiring import Wiring
from sync.config import Settings
from sync.sandbox import Sandbox
from tests.app.conftest import runs, wait_for

# Six attempts with backoff would make a 503-forever cycle last ~15 s per request.
FAST_RETRY = RetryPolicy(max_attempts=2, base=0.01, cap=0.02)


@pytest.fixture
def settings(db_url: str, sandbox: Sandbox, fernet_key: str) -> Settings:
    """Settings pointing at the test database and the sandbox."""
    return Settings(
        database_url=db_url,
        secret_key=sandbox.secret_key,
        api_url=sandbox.url,
        encryption_key=fernet_key,
    )


@pytest.fixture
def daemon(engine: Engine, settings: Settings) -> Daemon:
    """A daemon on the test database with a fast retry policy."""
    return Daemon(engine, Wiring(settings), SyncMetrics(), retry=FAST_RETRY)


def test_failing_cycles_are_logged_and_the_schedule_goes_on(
    daemon: Daemon,
    sandbox: Sandbox,
    sessions: sessionmaker[Session],
    registered: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With /v1/links answering 503, every cycle fails, is logged, and the next one runs."""
    sandbox.faults.add("status_503", path=r"/v1/links", times=None)
    scheduler = build_scheduler(daemon, make_trigger("1s", None))
    caplog.set_level(logging.INFO)
    thread = threading.Thread(target=scheduler.start, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len([r for r in runs(sessions) if r.finished_at]) >= 2, 15, "2 runs")
    finally:
        stop_daemon(daemon, scheduler)
        thread.join(10)
    assert not thread.is_alive()
    finished = [r for r in runs(sessions) if r.finished_at]
    assert {r.status for r in finished} == {"failed"}
    assert all("ServerError" in (r.error_summary or "") or r.errors for r in finished)
    assert "list:ServerError" in caplog.text
    metrics = daemon.metrics
    assert metrics.value("fintoc_sync_runs_total", status="failed") >= 2
    assert metrics.value("fintoc_sync_http_requests_total", status="503") >= 4
    assert metrics.value("fintoc_sync_http_retries_total") >= 2
    failures = metrics.value("fintoc_sync_consecutive_failures")
    assert failures >= 2
    assert daemon.metrics.health().ok == (failures < 3)


def test_cycle_after_a_database_restart_reconnects(
    daemon: Daemon, db_url: str, sessions: sessionmaker[Session], registered: list[str]
) -> None:
    """Server-side killed connections (a Postgres restart) do not fail the next cycle."""
    assert daemon.cycle() == "succeeded"
    admin = create_engine(db_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar()
    admin.dispose()
    assert killed
    assert daemon.cycle() == "succeeded"
    assert [r.status for r in runs(sessions)] == ["succeeded", "succeeded"]


def test_cycle_with_the_database_down_is_logged_not_raised(
    settings: Settings, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A cycle that cannot reach Postgres logs why, counts an error and returns."""
    unreachable = create_engine(
        "postgresql+psycopg://nobody:pw@127.0.0.1:1/none", pool_pre_ping=True
    )
    daemon = Daemon(unreachable, Wiring(settings), SyncMetrics(), retry=FAST_RETRY)
    caplog.set_level(logging.INFO)
    assert daemon.cycle() == "error"
    assert "cycle failed (OperationalError)" in caplog.text
    assert "the next cycle runs as scheduled" in caplog.text
    assert ":pw@" not in caplog.text
    assert daemon.metrics.value("fintoc_sync_runs_total", status="error") == 1


def test_cycle_after_stop_does_nothing(daemon: Daemon, sessions: sessionmaker[Session]) -> None:
    """Once a stop was requested, a cycle that was already due starts no run."""
    daemon.request_stop()
    assert daemon.cycle() == "stopped"
    assert runs(sessions) == []
