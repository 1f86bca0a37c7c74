"""The daemon's metrics and health, on ``prometheus_client`` with a registry per daemon.

Each :class:`SyncMetrics` owns its own ``CollectorRegistry`` (never the library's global
default), so two daemons in one process (tests) never share a series. Process and
platform collectors come with it (``process_*``, ``python_info``). Series (every one is
present from the first scrape):

==============================================  =======  ===========================================
``fintoc_sync_up``                              gauge    1 while /healthz answers 200, else 0
``fintoc_sync_last_success_timestamp_seconds``  gauge    end of the last succeeded/partial run (0 =
                                                         never)
``fintoc_sync_runs_total{status}``              counter  cycles by outcome: succeeded, partial,
                                                         failed, interrupted (the pipeline's run
                                                         status), skipped (another process held the
                                                         lock), error (the cycle raised, e.g. the
                                                         database was down)
``fintoc_sync_run_duration_seconds``            summary  _sum/_count of cycles that ran or raised
``fintoc_sync_consecutive_failures``            gauge    failed/error cycles since the last success
``fintoc_sync_rows_written_total{table}``       counter  rows inserted or changed, by table
``fintoc_sync_http_requests_total{status}``     counter  API responses by HTTP status; ``error``
                                                         when no response came (timeout, reset)
``fintoc_sync_http_retries_total``              counter  requests that were a retry (attempt > 1)
``fintoc_sync_links{status}``                   gauge    links by status (``deleted`` for links
                                                         gone from the API), after every cycle
``fintoc_sync_webhook_events_total{type,        counter  webhook events by type and outcome:
outcome}``                                               received (a new id stored), duplicate,
                                                         rejected (4xx), processed, ignored,
                                                         retried, failed
``fintoc_sync_webhook_oldest_unprocessed_       gauge    age of the oldest ``received`` event (0
seconds``                                                when none waits)
==============================================  =======  ===========================================

Health (``/healthz``): 200 while fewer than ``failure_threshold`` (3) cycles in a row
have failed, the last successful cycle (or the start) is at most ``max_age`` old
(``FINTOC_SYNC_HEALTH_MAX_AGE``, default three intervals and at least an hour), and,
before the first cycle ends, during ``startup_grace`` (15 min); 503 otherwise. So a
daemon that skips every cycle (someone holds the sync lock) turns unhealthy.
``partial`` counts as a success (the daemon works, one link needs its
holder), ``skipped`` and ``interrupted`` change nothing.

See docs/decisions/0007-http-server-and-metrics.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    PlatformCollector,
    ProcessCollector,
    Summary,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
SUCCESS_STATUSES = frozenset({"succeeded", "partial"})
FAILURE_STATUSES = frozenset({"failed", "error"})
RUN_STATUSES = ("succeeded", "partial", "failed", "interrupted", "skipped", "error")
WEBHOOK_OUTCOMES = (
    "received",
    "duplicate",
    "rejected",
    "processed",
    "ignored",
    "retried",
    "failed",
)

# SyncReport.counts key -> the table those rows went to
ROW_COUNTS = {
    "accounts_upserted": "accounts",
    "snapshots_written": "balance_snapshots",
    "transitions_written": "link_status_transitions",
    "movements_upserted": "movements",
    "movements_changed": "movement_changes",
}


@dataclass(frozen=True)
class Health:
    """What /healthz answers."""

    ok: bool
    reason: str


class SyncMetrics:
    """The daemon's series (module docstring) and its health, fed by the scheduler."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        failure_threshold: int = 3,
        startup_grace: float = 900.0,
        max_age: float | None = None,
        process_metrics: bool = True,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._started = clock()
        self._last_success: float | None = None
        self._threshold = failure_threshold
        self._grace = startup_grace
        self._max_age = max_age
        self._cycles_ended = 0
        self._failures = 0
        self._state_lock = threading.Lock()
        self._oldest_event: Callable[[], float] = lambda: 0.0
        self._declare()
        if process_metrics:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)

    def _declare(self) -> None:
        reg = self.registry
        self.up = Gauge("fintoc_sync_up", "1 while /healthz answers 200, else 0", registry=reg)
        self.up.set_function(lambda: 1.0 if self.health().ok else 0.0)
        self.last_success = Gauge(
            "fintoc_sync_last_success_timestamp_seconds",
            "Unix time the last succeeded or partial run ended (0 = never)",
            registry=reg,
        )
        self.runs = Counter("fintoc_sync_runs", "Sync cycles by outcome", ["status"], registry=reg)
        for status in RUN_STATUSES:
            self.runs.labels(status)
        self.duration = Summary(
            "fintoc_sync_run_duration_seconds",
            "Duration of cycles that ran or raised",
            registry=reg,
        )
        self.consecutive = Gauge(
            "fintoc_sync_consecutive_failures", "Failed cycles since the last success", registry=reg
        )
        self.rows = Counter(
            "fintoc_sync_rows_written",
            "Rows inserted or changed, by table",
            ["table"],
            registry=reg,
        )
        for table in ROW_COUNTS.values():
            self.rows.labels(table)
        self.requests = Counter(
            "fintoc_sync_http_requests",
            "Fintoc API responses by HTTP status",
            ["status"],
            registry=reg,
        )
        self.retries = Counter(
            "fintoc_sync_http_retries", "Fintoc API requests retried", registry=reg
        )
        self.links = Gauge(
            "fintoc_sync_links", "Links by status after the last cycle", ["status"], registry=reg
        )
        self.webhook_events = Counter(
            "fintoc_sync_webhook_events",
            "Webhook events by type and outcome",
            ["type", "outcome"],
            registry=reg,
        )
        oldest = Gauge(
            "fintoc_sync_webhook_oldest_unprocessed_seconds",
            "Age of the oldest webhook event not yet processed (0 when none waits)",
            registry=reg,
        )
        oldest.set_function(lambda: self._oldest_event())

    # ---------------------------------------------------------------- feeds

    def on_request(self, method: str, status: int | None, attempt: int) -> None:
        """The API client's hook: one call per HTTP attempt."""
        self.requests.labels(str(status or "error")).inc()
        if attempt > 1:
            self.retries.inc()

    def run_finished(self, status: str, counts: Mapping[str, int], duration: float) -> None:
        """A pipeline run ended with this status and these counts."""
        for key, table in ROW_COUNTS.items():
            self.rows.labels(table).inc(counts.get(key, 0))
        self.duration.observe(duration)
        self._ended(status)

    def cycle_failed(self, duration: float) -> None:
        """A cycle raised before its run could end (API or database unreachable)."""
        self.duration.observe(duration)
        self._ended("error")

    def cycle_skipped(self) -> None:
        """Another process held the sync lock."""
        self._ended("skipped")

    def set_links(self, by_status: Mapping[str, int]) -> None:
        """Replace the links-by-status gauge (statuses not given disappear)."""
        with self._state_lock:
            self.links.clear()
            for status, n in by_status.items():
                self.links.labels(status).set(n)

    def webhook_event(self, event_type: str, outcome: str) -> None:
        """Count a webhook event's outcome (types are free text: bounded in length)."""
        self.webhook_events.labels(event_type[:80], outcome).inc()

    def watch_oldest_event(self, age: Callable[[], float]) -> None:
        """Where the oldest-unprocessed gauge reads its value at scrape time."""
        self._oldest_event = age

    def _ended(self, status: str) -> None:
        self.runs.labels(status).inc()
        with self._state_lock:
            self._cycles_ended += 1
            if status in SUCCESS_STATUSES:
                self._failures = 0
                self._last_success = self._clock()
                self.last_success.set(self._last_success)
            elif status in FAILURE_STATUSES:
                self._failures += 1
            self.consecutive.set(self._failures)

    # ---------------------------------------------------------------- reads

    def value(self, name: str, **labels: str) -> float:
        """The current value of one sample (0 if it has none yet)."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def health(self) -> Health:
        """Healthy unless ``failure_threshold`` cycles failed in a row or none ended in time."""
        with self._state_lock:
            ended, failures = self._cycles_ended, self._failures
        if failures >= self._threshold:
            return Health(False, f"the last {failures} cycles failed")
        # an attribute, not the registry: reading the registry collects `up`, which asks us
        last = self._last_success or self._started
        age = self._clock() - last
        if self._max_age is not None and age > self._max_age:
            return Health(
                False, f"no successful cycle for {age:.0f}s (more than {self._max_age:.0f}s)"
            )
        if ended == 0 and self._clock() - self._started > self._grace:
            return Health(False, f"no cycle ended within {self._grace:.0f}s of start")
        if ended == 0:
            return Health(True, "starting: no cycle has ended yet")
        return Health(True, f"{failures} failed cycle(s) in a row")

    def render(self) -> str:
        """The /metrics body, Prometheus text format 0.0.4."""
        return generate_latest(self.registry).decode()
