"""Parsing --every and --cron, and the job the scheduler is given."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from sync.app.daemon import (
    JOB_ID,
    Daemon,
    build_scheduler,
    make_trigger,
    parse_every,
)
from sync.app.metrics import SyncMetrics
from sync.app.wiring import Wiring
from sync.config import Settings
from sync.errors import ConfigError
from tests.app.conftest import REPO


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15m", 900), ("1h", 3600), ("30s", 30), ("90s", 90), ("1d", 86400), (" 1H30m ", 5400)],
)
def test_every_parses_units(text: str, seconds: int) -> None:
    """--every takes a number and a unit (s, m, h, d), also combined like 1h30m."""
    assert parse_every(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "15", "m", "soon", "1.5h", "-5m", "15 minutes", "0s", "1w"])
def test_every_rejects_nonsense(text: str) -> None:
    """Anything else is a ConfigError that shows the accepted form."""
    with pytest.raises(ConfigError, match="--every"):
        parse_every(text)


def test_default_schedule_is_every_15_minutes() -> None:
    """With neither --every nor --cron the daemon runs every 15 minutes."""
    trigger = make_trigger(None, None)
    assert isinstance(trigger, IntervalTrigger)
    assert trigger.interval == timedelta(minutes=15)


def test_cron_is_read_in_utc() -> None:
    """--cron takes a crontab expression, evaluated in UTC."""
    trigger = make_trigger(None, "*/15 * * * *")
    assert isinstance(trigger, CronTrigger)
    now = datetime(2025, 1, 1, 10, 7, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, now) == datetime(2025, 1, 1, 10, 15, tzinfo=UTC)


@pytest.mark.parametrize("expr", ["* * *", "61 * * * *", "x * * * *", "*/15 * * * * *"])
def test_bad_cron_is_a_config_error(expr: str) -> None:
    """A bad crontab expression is a ConfigError that names the five fields."""
    with pytest.raises(ConfigError, match="minute hour day-of-month month day-of-week"):
        make_trigger(None, expr)


def test_every_and_cron_together_are_refused() -> None:
    """--every and --cron are exclusive."""
    with pytest.raises(ConfigError, match="not both"):
        make_trigger("15m", "* * * * *")


def test_job_runs_at_start_once_at_a_time(engine: Engine) -> None:
    """One job, max_instances=1, coalesced, with a misfire grace, due immediately."""
    now = datetime(2025, 1, 1, tzinfo=UTC)
    daemon = Daemon(engine, Wiring(Settings()), SyncMetrics())
    scheduler = build_scheduler(daemon, make_trigger("1h", None), now=lambda: now)
    [job] = scheduler.get_jobs()
    assert job.id == JOB_ID
    assert (job.max_instances, job.coalesce, job.misfire_grace_time) == (1, True, 300)
    assert job.next_run_time == now


def test_metrics_host_defaults_to_loopback() -> None:
    """/metrics listens on 127.0.0.1 unless FINTOC_SYNC_METRICS_HOST says otherwise."""
    assert Settings.from_env({}).metrics_host == "127.0.0.1"
    env = {"FINTOC_SYNC_METRICS_HOST": "0.0.0.0"}  # noqa: S104
    assert Settings.from_env(env).metrics_host == "0.0.0.0"  # noqa: S104


def test_cli_rejects_a_bad_interval_with_exit_2(daemon_env: dict[str, str]) -> None:
    """`fintoc-sync daemon --every soon` exits 2 with a one-line reason."""
    proc = subprocess.run(
        [sys.executable, "-m", "sync", "daemon", "--every", "soon"],
        cwd=REPO,
        env=daemon_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "--every 'soon' is not an interval" in proc.stderr
