"""The daemon's metrics and its ``/metrics`` + ``/healthz`` HTTP endpoint.

No client library: the Prometheus text exposition format (0.0.4) is a few lines of
code, and one dependency fewer is one thing fewer to audit in a process that holds
the API key. Series (every one is present from the first scrape):

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
==============================================  =======  ===========================================

Health (``/healthz``): 200 while fewer than ``failure_threshold`` (3) cycles in a row
have failed, the last successful cycle (or the start) is at most ``max_age`` old
(``FINTOC_SYNC_HEALTH_MAX_AGE``, default three intervals and at least an hour), and,
before the first cycle ends, during ``startup_grace`` (15 min); 503 otherwise. So a
daemon that skips every cycle (someone holds the sync lock) turns unhealthy.
``partial`` counts as a success (the daemon works, one link needs its
holder), ``skipped`` and ``interrupted`` change nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sync.errors import ConfigError

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SUCCESS_STATUSES = frozenset({"succeeded", "partial"})
FAILURE_STATUSES = frozenset({"failed", "error"})
RUN_STATUSES = ("succeeded", "partial", "failed", "interrupted", "skipped", "error")

# SyncReport.counts key -> the table those rows went to
ROW_COUNTS = {
    "accounts_upserted": "accounts",
    "snapshots_written": "balance_snapshots",
    "transitions_written": "link_status_transitions",
    "movements_upserted": "movements",
    "movements_changed": "movement_changes",
}


@dataclass
class _Family:
    name: str
    kind: str
    help: str
    label: str | None = None
    values: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        for key, value in sorted(self.values.items()):
            if self.kind == "summary":
                out.append(f"{self.name}_{key} {_number(value)}")
            elif self.label is None:
                out.append(f"{self.name} {_number(value)}")
            else:
                out.append(f'{self.name}{{{self.label}="{_escape(key)}"}} {_number(value)}')
        return out


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _escape(label_value: str) -> str:
    return label_value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


class Registry:
    """Thread-safe metric families, rendered in the Prometheus text format."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: dict[str, _Family] = {}

    def declare(
        self, name: str, kind: str, help: str, label: str | None = None, initial: Iterable[str] = ()
    ) -> None:
        """Add a family; ``initial`` label values start at 0 so they are scraped at once."""
        family = _Family(name, kind, help, label)
        if kind == "summary":
            family.values = {"sum": 0.0, "count": 0.0}
        elif label is None:
            family.values = {"": 0.0}
        else:
            family.values = dict.fromkeys(initial, 0.0)
        with self._lock:
            self._families[name] = family

    def inc(self, name: str, amount: float = 1.0, label: str = "") -> None:
        """Add to a counter (or gauge)."""
        with self._lock:
            values = self._families[name].values
            values[label] = values.get(label, 0.0) + float(amount)

    def set(self, name: str, value: float, label: str = "") -> None:
        """Set a gauge."""
        with self._lock:
            self._families[name].values[label] = float(value)

    def replace(self, name: str, values: Mapping[str, float]) -> None:
        """Set every label of a gauge at once (labels not given disappear)."""
        with self._lock:
            self._families[name].values = dict(values)

    def observe(self, name: str, value: float) -> None:
        """Add one observation to a summary."""
        with self._lock:
            values = self._families[name].values
            values["sum"] += value
            values["count"] += 1

    def value(self, name: str, label: str = "") -> float:
        """The current value of one series (0 if it has none yet)."""
        with self._lock:
            return self._families[name].values.get(label, 0.0)

    def render(self) -> str:
        """Every family in the text exposition format."""
        with self._lock:
            lines = [line for family in self._families.values() for line in family.lines()]
        return "\n".join(lines) + "\n"


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
    ) -> None:
        self.registry = Registry()
        self._clock = clock
        self._started = clock()
        self._threshold = failure_threshold
        self._grace = startup_grace
        self._max_age = max_age
        self._cycles_ended = 0
        self._state_lock = threading.Lock()
        _declare(self.registry)

    def on_request(self, method: str, status: int | None, attempt: int) -> None:
        """The API client's hook: one call per HTTP attempt."""
        self.registry.inc("fintoc_sync_http_requests_total", label=str(status or "error"))
        if attempt > 1:
            self.registry.inc("fintoc_sync_http_retries_total")

    def run_finished(self, status: str, counts: Mapping[str, int], duration: float) -> None:
        """A pipeline run ended with this status and these counts."""
        for key, table in ROW_COUNTS.items():
            self.registry.inc("fintoc_sync_rows_written_total", counts.get(key, 0), label=table)
        self.registry.observe("fintoc_sync_run_duration_seconds", duration)
        self._ended(status)

    def cycle_failed(self, duration: float) -> None:
        """A cycle raised before its run could end (API or database unreachable)."""
        self.registry.observe("fintoc_sync_run_duration_seconds", duration)
        self._ended("error")

    def cycle_skipped(self) -> None:
        """Another process held the sync lock."""
        self._ended("skipped")

    def set_links(self, by_status: Mapping[str, int]) -> None:
        """Replace the links-by-status gauge."""
        self.registry.replace("fintoc_sync_links", {k: float(v) for k, v in by_status.items()})

    def _ended(self, status: str) -> None:
        self.registry.inc("fintoc_sync_runs_total", label=status)
        with self._state_lock:
            self._cycles_ended += 1
            if status in SUCCESS_STATUSES:
                self.registry.set("fintoc_sync_consecutive_failures", 0)
                self.registry.set("fintoc_sync_last_success_timestamp_seconds", self._clock())
            elif status in FAILURE_STATUSES:
                self.registry.inc("fintoc_sync_consecutive_failures")

    def health(self) -> Health:
        """Healthy unless ``failure_threshold`` cycles failed in a row or none ended in time."""
        failures = int(self.registry.value("fintoc_sync_consecutive_failures"))
        with self._state_lock:
            ended = self._cycles_ended
        if failures >= self._threshold:
            return Health(False, f"the last {failures} cycles failed")
        last = self.registry.value("fintoc_sync_last_success_timestamp_seconds") or self._started
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
        """The /metrics body (``fintoc_sync_up`` follows the health)."""
        self.registry.set("fintoc_sync_up", 1.0 if self.health().ok else 0.0)
        return self.registry.render()


def _declare(registry: Registry) -> None:
    registry.declare("fintoc_sync_up", "gauge", "1 while /healthz answers 200, else 0")
    registry.declare(
        "fintoc_sync_last_success_timestamp_seconds",
        "gauge",
        "Unix time the last succeeded or partial run ended (0 = never)",
    )
    registry.declare(
        "fintoc_sync_runs_total", "counter", "Sync cycles by outcome", "status", RUN_STATUSES
    )
    registry.declare(
        "fintoc_sync_run_duration_seconds", "summary", "Duration of cycles that ran or raised"
    )
    registry.declare(
        "fintoc_sync_consecutive_failures", "gauge", "Failed cycles since the last success"
    )
    registry.declare(
        "fintoc_sync_rows_written_total",
        "counter",
        "Rows inserted or changed, by table",
        "table",
        ROW_COUNTS.values(),
    )
    registry.declare(
        "fintoc_sync_http_requests_total",
        "counter",
        "Fintoc API responses by HTTP status",
        "status",
    )
    registry.declare("fintoc_sync_http_retries_total", "counter", "Fintoc API requests retried")
    registry.declare("fintoc_sync_links", "gauge", "Links by status after the last cycle", "status")


# ------------------------------------------------------------------------- HTTP endpoint


def _handler_for(metrics: SyncMetrics) -> type[BaseHTTPRequestHandler]:
    class MetricsHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE, metrics.render())
            elif path == "/healthz":
                health = metrics.health()
                body = json.dumps({"ok": health.ok, "reason": health.reason}) + "\n"
                self._send(200 if health.ok else 503, "application/json", body)
            else:
                self._send(
                    404, "text/plain; charset=utf-8", "not found: try /metrics or /healthz\n"
                )

        def _send(self, status: int, content_type: str, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            # scrapes every 15 s would drown the sync's own logs
            log.debug("metrics endpoint: " + format, *args)

    return MetricsHandler


class _MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # socketserver prints tracebacks to stderr, which would break JSON-lines logs
        log.exception("metrics endpoint failed to answer a request")


def serve_metrics(metrics: SyncMetrics, host: str, port: int) -> ThreadingHTTPServer:
    """Serve /metrics and /healthz in a daemon thread; ``server.shutdown()`` stops it."""
    try:
        server = _MetricsServer((host, port), _handler_for(metrics))
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror}") from None
    thread = threading.Thread(target=server.serve_forever, name="fintoc-sync-metrics", daemon=True)
    thread.start()
    bound_host, bound_port = server.server_address[:2]
    log.info("serving metrics on http://%s:%s/metrics and /healthz", bound_host, bound_port)
    return server
