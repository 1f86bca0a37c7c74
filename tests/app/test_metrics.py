"""The metrics registry, its text format, and /healthz semantics (pure, no I/O but HTTP)."""

from __future__ import annotations

import httpx

from sync.app.metrics import Registry, SyncMetrics, serve_metrics


class FakeClock:
    """A settable time.time()."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_render_is_prometheus_text() -> None:
    """HELP and TYPE precede samples; labels are quoted and escaped; summaries have _sum/_count."""
    reg = Registry()
    reg.declare("x_total", "counter", "X things", "kind", ["a"])
    reg.declare("d_seconds", "summary", "Durations")
    reg.inc("x_total", label='we"ird\\')
    reg.observe("d_seconds", 1.5)
    assert reg.render().splitlines() == [
        "# HELP x_total X things",
        "# TYPE x_total counter",
        'x_total{kind="a"} 0',
        'x_total{kind="we\\"ird\\\\"} 1',
        "# HELP d_seconds Durations",
        "# TYPE d_seconds summary",
        "d_seconds_count 1",
        "d_seconds_sum 1.5",
    ]


def test_every_series_is_exposed_before_the_first_cycle() -> None:
    """All documented series appear at the first scrape, at zero."""
    text = SyncMetrics().render()
    for name in (
        "fintoc_sync_up 1",
        "fintoc_sync_last_success_timestamp_seconds 0",
        'fintoc_sync_runs_total{status="succeeded"} 0',
        'fintoc_sync_runs_total{status="skipped"} 0',
        "fintoc_sync_run_duration_seconds_count 0",
        'fintoc_sync_rows_written_total{table="balance_snapshots"} 0',
        "fintoc_sync_http_retries_total 0",
        "# TYPE fintoc_sync_http_requests_total counter",
        "# TYPE fintoc_sync_links gauge",
    ):
        assert name in text


def test_requests_are_counted_by_status_and_retries_by_attempt() -> None:
    """on_request counts each attempt by status ('error' for no response); attempt>1 is a retry."""
    m = SyncMetrics()
    m.on_request("GET", 503, 1)
    m.on_request("GET", None, 2)
    m.on_request("GET", 200, 3)
    reg = m.registry
    assert reg.value("fintoc_sync_http_requests_total", "503") == 1
    assert reg.value("fintoc_sync_http_requests_total", "error") == 1
    assert reg.value("fintoc_sync_http_requests_total", "200") == 1
    assert reg.value("fintoc_sync_http_retries_total") == 2


def test_run_counts_rows_by_table_and_success_time() -> None:
    """A finished run adds its rows per table, its duration, and stamps the last success."""
    clock = FakeClock()
    m = SyncMetrics(clock=clock)
    m.run_finished("partial", {"accounts_upserted": 3, "movements_upserted": 7}, 2.0)
    reg = m.registry
    assert reg.value("fintoc_sync_rows_written_total", "accounts") == 3
    assert reg.value("fintoc_sync_rows_written_total", "movements") == 7
    assert reg.value("fintoc_sync_last_success_timestamp_seconds") == clock.now
    assert reg.value("fintoc_sync_runs_total", "partial") == 1


def test_health_fails_after_three_failures_in_a_row() -> None:
    """503 after 3 failed cycles in a row; one success makes it healthy again."""
    m = SyncMetrics()
    m.run_finished("failed", {}, 1.0)
    m.cycle_failed(1.0)
    m.cycle_skipped()  # neutral: another replica synced
    assert m.health().ok
    m.cycle_failed(1.0)
    assert not m.health().ok
    assert "fintoc_sync_up 0" in m.render()
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
    """/metrics is Prometheus text, /healthz is 200/503 JSON, anything else 404."""
    m = SyncMetrics(failure_threshold=1)
    server = serve_metrics(m, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        scrape = httpx.get(f"{base}/metrics")
        assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "fintoc_sync_up 1" in scrape.text
        assert httpx.get(f"{base}/healthz").json()["ok"] is True
        m.cycle_failed(0.1)
        health = httpx.get(f"{base}/healthz")
        assert (health.status_code, health.json()["ok"]) == (503, False)
        assert httpx.get(f"{base}/nope").status_code == 404
    finally:
        server.shutdown()
        server.server_close()
