"""The sync lock cannot be taken by the analyst, and skipped cycles are seen, not hidden."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from sync.api.client import RetryPolicy
from sync.app.daemon import SKIP_WARNING, Daemon
from sync.app.metrics import SyncMetrics
from sync.app.wiring import Wiring
from sync.config import Settings
from sync.sandbox import Sandbox
from sync.store.db import lock_key, try_sync_lock

FAST_RETRY = RetryPolicy(max_attempts=2, base=0.01, cap=0.02)


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
