"""The metrics (prometheus_client, a registry per daemon) and /healthz semantics."""

from __future__ import annotations

import contextlib
import socket
import time

import httpx

from sync.app.http import Limits, serve_metrics
from sync.app.metrics import SyncMetrics


class FakeClock:
    """A settable time.time()."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_every_series_is_exposed_before_the_first_cycle() -> None:
    """All documented series appear at the first scrape, at zero, plus process metrics."""
    text = SyncMetrics().render()
    for name in (
        "fintoc_sync_up 1.0",
        "fintoc_sync_last_success_timestamp_seconds 0.0",
        'fintoc_sync_runs_total{status="succeeded"} 0.0',
        'fintoc_sync_runs_total{status="skipped"} 0.0',
        "fintoc_sync_run_duration_seconds_count 0.0",
        'fintoc_sync_rows_written_total{table="balance_snapshots"} 0.0',
        "fintoc_sync_http_retries_total 0.0",
        "# TYPE fintoc_sync_http_requests_total counter",
        "# TYPE fintoc_sync_links gauge",
        "fintoc_sync_webhook_oldest_unprocessed_seconds 0.0",
        "process_resident_memory_bytes",
    ):
        assert name in text


def test_two_daemons_do_not_share_series() -> None:
    """Each SyncMetrics has its own registry: counting in one leaves the other at zero."""
    a, b = SyncMetrics(), SyncMetrics()
    a.on_request("GET", 200, 1)
    assert a.value("fintoc_sync_http_requests_total", status="200") == 1
    assert b.value("fintoc_sync_http_requests_total", status="200") == 0


def test_requests_are_counted_by_status_and_retries_by_attempt() -> None:
    """on_request counts each attempt by status ('error' for no response); attempt>1 is a retry."""
    m = SyncMetrics()
    m.on_request("GET", 503, 1)
    m.on_request("GET", None, 2)
    m.on_request("GET", 200, 3)
    assert m.value("fintoc_sync_http_requests_total", status="503") == 1
    assert m.value("fintoc_sync_http_requests_total", status="error") == 1
    assert m.value("fintoc_sync_http_requests_total", status="200") == 1
    assert m.value("fintoc_sync_http_retries_total") == 2


def test_run_counts_rows_by_table_and_success_time() -> None:
    """A finished run adds its rows per table, its duration, and stamps the last success."""
    clock = FakeClock()
    m = SyncMetrics(clock=clock)
    m.run_finished("partial", {"accounts_upserted": 3, "movements_upserted": 7}, 2.0)
    assert m.value("fintoc_sync_rows_written_total", table="accounts") == 3
    assert m.value("fintoc_sync_rows_written_total", table="movements") == 7
    assert m.value("fintoc_sync_last_success_timestamp_seconds") == clock.now
    assert m.value("fintoc_sync_runs_total", status="partial") == 1


def test_links_gauge_is_replaced_as_a_whole() -> None:
    """set_links drops statuses that are no longer given."""
    m = SyncMetrics()
    m.set_links({"active": 2, "login_required": 1})
    m.set_links({"active": 3})
    assert m.value("fintoc_sync_links", status="active") == 3
    assert 'fintoc_sync_links{status="login_required"}' not in m.render()


def test_health_fails_after_three_failures_in_a_row() -> None:
    """503 after 3 failed cycles in a row; one success makes it healthy again."""
    m = SyncMetrics()
    m.run_finished("failed", {}, 1.0)
    m.cycle_failed(1.0)
    m.cycle_skipped()  # neutral: another replica synced
    assert m.health().ok
    m.cycle_failed(1.0)
    assert not m.health().ok
    assert "fintoc_sync_up 0.0" in m.render()
    m.run_finished("succeeded", {}, 1.0)
    assert m.health().ok


def test_health_fails_when_no_cycle_ends_within_the_grace() -> None:
    """Before the first cycle ends it is healthy only during the start-up grace."""
    clock = FakeClock()
    m = SyncMetrics(clock=clock, startup_grace=60)
    assert m.health().ok
    clock.now += 61
    assert not m.health().ok
    m.cycle_skipped()
    assert m.health().ok


def test_endpoint_serves_metrics_and_healthz() -> None:
    """/metrics is Prometheus text, /healthz is 200/503 JSON, POST is 405, anything else 404."""
    m = SyncMetrics(failure_threshold=1)
    server = serve_metrics(m, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.address[1]}"
    try:
        scrape = httpx.get(f"{base}/metrics")
        assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "fintoc_sync_up 1.0" in scrape.text
        assert httpx.get(f"{base}/healthz").json()["ok"] is True
        m.cycle_failed(0.1)
        health = httpx.get(f"{base}/healthz")
        assert (health.status_code, health.json()["ok"]) == (503, False)
        assert httpx.get(f"{base}/nope").status_code == 404
        assert httpx.post(f"{base}/healthz").status_code == 405
        assert httpx.post(f"{base}/webhooks/fintoc").status_code == 404  # receiver not enabled
    finally:
        server.shutdown()


def test_idle_connections_beyond_the_limit_are_closed_and_healthz_still_answers() -> None:
    """Idle sockets past connection_limit do not block /healthz; the timeout closes them."""
    limits = Limits(threads=2, channel_timeout=1.0, connection_limit=4, cleanup_interval=0.3)
    server = serve_metrics(SyncMetrics(), "127.0.0.1", 0, limits=limits)
    port = server.address[1]
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(12)]
    try:
        started = time.monotonic()
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert health.status_code == 200
        assert time.monotonic() - started < 8
        closed = 0
        for sock in idle:
            sock.settimeout(6)
            with contextlib.suppress(TimeoutError):
                closed += sock.recv(1) == b""  # EOF: the server hung up on the idle client
        assert closed >= 4  # at least the ones it had accepted; the rest were never accepted
    finally:
        for sock in idle:
            sock.close()
        server.shutdown()
