"""The real `python -m sync daemon` process: first cycle, metrics, logs, lock, SIGTERM."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from sync.sandbox import Sandbox
from sync.store.db import try_sync_lock
from tests.app.conftest import DaemonProcess, runs, wait_for


def _finished_runs(sessions: sessionmaker[Session]) -> list[object]:
    return [r for r in runs(sessions) if r.finished_at is not None]


def _series(text: str) -> dict[str, float]:
    """`name{labels} value` lines of a scrape, comments skipped."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_first_cycle_runs_at_start_and_metrics_report_it(
    start_daemon: Callable[..., DaemonProcess],
    sessions: sessionmaker[Session],
    sandbox: Sandbox,
    registered: list[str],
) -> None:
    """The first cycle runs at start; /metrics and /healthz describe it; SIGTERM exits 0."""
    daemon = start_daemon("--every", "1h", "--log-format", "json")
    wait_for(lambda: _finished_runs(sessions), 20, "the first run to finish")

    [run] = runs(sessions)
    assert (run.kind, run.status, run.links_synced) == ("daemon", "succeeded", len(registered))
    # the links gauge is refreshed last in a cycle: once it is there, the cycle is counted
    wait_for(lambda: "fintoc_sync_links{" in daemon.get("/metrics").text, 5, "the links gauge")
    series = _series(daemon.get("/metrics").text)
    assert series['fintoc_sync_runs_total{status="succeeded"}'] == 1
    assert series["fintoc_sync_up"] == 1
    assert series["fintoc_sync_last_success_timestamp_seconds"] > 0
    assert series["fintoc_sync_run_duration_seconds_count"] == 1
    assert series['fintoc_sync_rows_written_total{table="accounts"}'] == run.accounts_upserted > 0
    assert series['fintoc_sync_http_requests_total{status="200"}'] >= len(registered) + 1
    assert series["fintoc_sync_http_retries_total"] == 0
    assert series['fintoc_sync_links{status="active"}'] >= 1
    assert series['fintoc_sync_runs_total{status="skipped"}'] == 0
    assert daemon.get("/healthz").status_code == 200

    assert daemon.terminate() == 0
    assert all(r.status != "running" for r in runs(sessions))
    lines = [json.loads(line) for line in daemon.log_text().splitlines() if line.strip()]
    messages = " ".join(doc["message"] for doc in lines)
    assert "daemon stopped" in messages
    text = daemon.log_text()
    assert sandbox.secret_key not in text
    assert not [token for token in registered if token in text]


def test_second_daemon_skips_while_the_lock_is_held(
    start_daemon: Callable[..., DaemonProcess],
    engine: Engine,
    sessions: sessionmaker[Session],
    registered: list[str],
) -> None:
    """While another process holds the sync lock, a cycle logs the skip and writes no run."""
    with try_sync_lock(engine) as held:
        assert held is not None
        daemon = start_daemon("--every", "1s")
        wait_for(lambda: "cycle skipped" in daemon.log_text(), 20, "the skip to be logged")
        scrape = daemon.get("/metrics").text
        assert runs(sessions) == []
    assert 'fintoc_sync_runs_total{status="skipped"} ' in scrape
    assert _series(scrape)['fintoc_sync_runs_total{status="skipped"}'] >= 1
    wait_for(lambda: _finished_runs(sessions), 20, "a run once the lock is free")
    assert daemon.terminate() == 0
    spans = [(r.started_at, r.finished_at) for r in runs(sessions)]
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end is not None and end <= start  # runs never overlap


def test_sigterm_mid_run_interrupts_cleanly(
    start_daemon: Callable[..., DaemonProcess],
    sessions: sessionmaker[Session],
    sandbox: Sandbox,
    registered: list[str],
) -> None:
    """SIGTERM during a run: links in flight commit, the run says interrupted, exit 0."""
    sandbox.faults.add("latency", path=r"^/v1/links/[^/]+$", times=None, seconds=0.4)
    daemon = start_daemon("--every", "1h", env={"FINTOC_SYNC_CONCURRENCY": "1"})
    wait_for(lambda: runs(sessions), 20, "the run to start")
    wait_for(lambda: re.search(r"link \S+ synced", daemon.log_text()), 20, "a link to be synced")

    assert daemon.terminate() == 0
    [run] = runs(sessions)
    assert run.status == "interrupted"
    assert 0 < run.links_synced < len(registered)
    assert "received SIGTERM" in daemon.log_text()
