"""`fintoc-sync daemon`: a sync cycle on a schedule until SIGTERM/SIGINT.

* One APScheduler 3.x ``BlockingScheduler`` job (``max_instances=1``, ``coalesce=True``,
  a misfire grace time); the first cycle runs at start. Cron expressions are read in UTC.
* Each cycle tries the sync lock (``LOCK TABLE fintoc.sync_lock``, which only the sync
  role can take); when another daemon (or a cron ``sync``) holds it, the cycle is logged
  as skipped, not queued, and after ``SKIP_WARNING`` skips in a row a warning names the
  holder.
* Every exception of a cycle is logged (scrubbed) and counted; the next cycle runs as
  scheduled, on connections the engine re-checks (``pool_pre_ping``).
* SIGTERM/SIGINT stop the current run after the links in flight (each link commits or
  rolls back as a whole), the run row says ``interrupted``, the lock is released, exit 0.

See docs/decisions/0003-daemon-scheduling-and-locking.md.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING

from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, func, select

from models import Link
from sync.api.client import RetryPolicy
from sync.app.http import HttpServer, serve_metrics
from sync.app.metrics import SyncMetrics
from sync.app.wiring import Wiring, interruptible_sleep
from sync.errors import ConfigError
from sync.run.context import describe
from sync.run.pipeline import Pipeline, SyncReport
from sync.store.db import make_sessionmaker, sync_lock_holder, try_sync_lock

if TYPE_CHECKING:
    from sync.app.realtime import Realtime

log = logging.getLogger(__name__)

DEFAULT_EVERY = "15m"
# A cycle that could not start on time (the process was suspended, the previous cycle
# overran) still runs if it is at most this late; later ones collapse into the next.
MISFIRE_GRACE_SECONDS = 300
JOB_ID = "fintoc-sync-cycle"
#: Skipped cycles in a row after which the skip is a warning naming who holds the lock.
SKIP_WARNING = 3

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EVERY_PART = re.compile(r"(\d+)([smhd])")


# ------------------------------------------------------------------------- schedule


def parse_every(text: str) -> timedelta:
    """``30s``, ``90s``, ``15m``, ``1h``, ``1d``, ``1h30m`` → a timedelta (ConfigError else)."""
    raw = text.strip().lower()
    parts = _EVERY_PART.findall(raw)
    if not raw or "".join(n + u for n, u in parts) != raw:
        raise ConfigError(
            f"--every {text!r} is not an interval; write a number and a unit (s, m, h, d), "
            "e.g. 30s, 15m, 1h or 1h30m"
        )
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds < 1:
        raise ConfigError(f"--every {text!r} must be at least 1s")
    return timedelta(seconds=seconds)


def make_trigger(every: str | None, cron: str | None) -> BaseTrigger:
    """The job's trigger: ``--cron`` (UTC) or ``--every`` (default 15m)."""
    if every is not None and cron is not None:
        raise ConfigError("give --every or --cron, not both")
    if cron is None:
        interval = parse_every(every or DEFAULT_EVERY)
        return IntervalTrigger(seconds=int(interval.total_seconds()), timezone=UTC)
    try:
        return CronTrigger.from_crontab(cron, timezone=UTC)
    except ValueError as exc:
        raise ConfigError(
            f"--cron {cron!r} is not a crontab expression "
            f"(minute hour day-of-month month day-of-week): {exc}"
        ) from None


def health_max_age(trigger: BaseTrigger, configured: float | None) -> float:
    """How old the last successful cycle may be before /healthz says 503.

    ``FINTOC_SYNC_HEALTH_MAX_AGE`` if set, else three intervals of the schedule (for a
    cron, the gap between its next two fire times), and never less than an hour.
    """
    if configured is not None:
        return configured
    now = datetime.now(UTC)
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first) if first else None
    interval = (second - first).total_seconds() if first and second else 3600.0
    return max(3 * interval, 3600.0)


# ------------------------------------------------------------------------- one cycle


class Daemon:
    """The scheduled job: lock, run the pipeline, count; never lets an exception out."""

    def __init__(
        self,
        engine: Engine,
        wiring: Wiring,
        metrics: SyncMetrics,
        *,
        retry: RetryPolicy | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine, self.wiring, self.metrics = engine, wiring, metrics
        self.retry = retry
        self.stopping = threading.Event()
        self._monotonic = monotonic
        self._current: Pipeline | None = None
        self.skips_in_a_row = 0
        self._current_lock = threading.Lock()

    def cycle(self) -> str:
        """One scheduled cycle; returns its outcome (a run status, ``skipped`` or ``error``)."""
        if self.stopping.is_set():
            return "stopped"
        started = self._monotonic()
        try:
            outcome = self._locked_cycle(started)
        except Exception as exc:  # the scheduler must go on whatever happened
            outcome = "error"
            self.metrics.cycle_failed(self._monotonic() - started)
            _log_cycle_error(exc)
        self._refresh_links_gauge()
        level = logging.INFO if outcome in {"succeeded", "skipped"} else logging.WARNING
        log.log(level, "cycle finished: %s", outcome)  # instead of APScheduler's "executed"
        return outcome

    def request_stop(self) -> None:
        """Stop the run in progress after its links in flight; no new cycle starts."""
        self.stopping.set()
        with self._current_lock:
            if self._current is not None:
                self._current.stop.set()

    def _locked_cycle(self, started: float) -> str:
        with try_sync_lock(self.engine) as held:
            if held is None:
                self._skipped()
                return "skipped"
            self.skips_in_a_row = 0
            report = self._run_pipeline()
        self.metrics.run_finished(report.status, report.counts, self._monotonic() - started)
        return report.status

    def _skipped(self) -> None:
        self.skips_in_a_row += 1
        self.metrics.cycle_skipped()
        if self.skips_in_a_row < SKIP_WARNING:
            log.info("cycle skipped: another fintoc-sync process holds the sync lock")
            return
        try:
            holder = sync_lock_holder(self.engine) or "nobody any more"
        except Exception as exc:  # naming the holder is a courtesy, never a failure
            holder = f"unknown ({describe(exc)[0]})"
        log.warning(
            "cycle skipped %d times in a row: the sync lock is held by %s",
            self.skips_in_a_row,
            holder,
        )

    def _run_pipeline(self) -> SyncReport:
        client = self.wiring.client(
            on_request=self.metrics.on_request,
            retry=self.retry,
            sleep=interruptible_sleep(self.stopping),
        )
        with client as c:
            pipeline = self.wiring.pipeline(self.engine, c)
            with self._attached(pipeline):
                return pipeline.run(kind="daemon")

    @contextmanager
    def _attached(self, pipeline: Pipeline) -> Iterator[None]:
        # A pipeline of its own per cycle: an AuthenticationError sets its stop event,
        # which must not stop the daemon's later cycles.
        with self._current_lock:
            self._current = pipeline
            if self.stopping.is_set():
                pipeline.stop.set()
        try:
            yield
        finally:
            with self._current_lock:
                self._current = None

    def _refresh_links_gauge(self) -> None:
        try:
            self.metrics.set_links(links_by_status(self.engine))
        except Exception as exc:  # the database may be what just failed
            log.warning("could not count links by status: %s", describe(exc)[1].splitlines()[0])


def _log_cycle_error(exc: Exception) -> None:
    kind, message = describe(exc)
    first = message.strip().splitlines()[0] if message.strip() else kind
    log.error("cycle failed (%s): %s; the next cycle runs as scheduled", kind, first)
    log.debug("cycle failure details", exc_info=exc)


def links_by_status(engine: Engine) -> dict[str, int]:
    """Link counts by status; links gone from the API count as ``deleted``."""
    label = func.coalesce(Link.status, "unknown")
    deleted = select(func.count()).select_from(Link).where(Link.deleted_at.is_not(None))
    live = select(label, func.count()).where(Link.deleted_at.is_(None)).group_by(label)
    with make_sessionmaker(engine)() as session:
        counts = {str(status): int(n) for status, n in session.execute(live)}
        counts["deleted"] = int(session.scalar(deleted) or 0)
    return counts


# ------------------------------------------------------------------------- the process


def build_scheduler(
    daemon: Daemon, trigger: BaseTrigger, *, now: Callable[[], datetime] | None = None
) -> BlockingScheduler:
    """A scheduler with the one job, due at once (the first cycle runs at start)."""
    scheduler = BlockingScheduler(timezone=UTC)
    scheduler.add_job(
        daemon.cycle,
        trigger,
        id=JOB_ID,
        name="fintoc-sync cycle",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=MISFIRE_GRACE_SECONDS,
        next_run_time=(now or _utc_now)(),
    )
    return scheduler


def _utc_now() -> datetime:
    return datetime.now(UTC)


def stop_daemon(daemon: Daemon, scheduler: BlockingScheduler) -> None:
    """What SIGTERM/SIGINT do: stop the run after its links in flight, wait, stop."""
    daemon.request_stop()
    # a signal before start() finds nothing to shut down; run_daemon then never starts
    with suppress(SchedulerNotRunningError):
        scheduler.shutdown(wait=True)  # waits for the cycle in progress to close its run


class _SignalStop:
    """SIGTERM/SIGINT handlers that stop the daemon from a helper thread.

    The handler runs on the main thread, which may hold a scheduler lock at that
    instant; waiting there for the cycle (whose completion callback takes scheduler
    locks) could deadlock, so the waiting happens on a thread of its own.
    """

    def __init__(self, daemon: Daemon, scheduler: BlockingScheduler) -> None:
        self.daemon, self.scheduler = daemon, scheduler
        self.stopper: threading.Thread | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _SignalStop:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]  # what signal() gave back
        if self.stopper is not None:
            self.stopper.join()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stopper is not None:
            log.info("still stopping: waiting for the links in flight")
            return
        log.info("received %s: finishing the links in flight, then stopping", _name(signum))
        self.stopper = threading.Thread(
            target=stop_daemon, args=(self.daemon, self.scheduler), name="fintoc-sync-stop"
        )
        self.stopper.start()


def _realtime(
    engine: Engine, wiring: Wiring, metrics: SyncMetrics, webhook_port: int | None
) -> Realtime | None:
    if webhook_port is None:
        return None
    from sync.app.realtime import Realtime

    return Realtime(engine, wiring, metrics).start()


def _serve(
    wiring: Wiring,
    metrics: SyncMetrics,
    realtime: Realtime | None,
    metrics_port: int | None,
    metrics_host: str | None,
    webhook_port: int | None,
    webhook_host: str | None,
) -> list[HttpServer]:
    """The endpoints: one server per distinct port; the webhook one also serves metrics."""
    servers = []
    receiver = realtime.receiver if realtime is not None else None
    if webhook_port is not None:
        host = webhook_host or wiring.settings.webhook_host
        servers.append(serve_metrics(metrics, host, webhook_port, webhooks=receiver))
    if metrics_port is not None and metrics_port != webhook_port:
        host = metrics_host or wiring.settings.metrics_host
        try:
            servers.append(serve_metrics(metrics, host, metrics_port))
        except BaseException:
            for server in servers:
                server.shutdown()
            raise
    return servers


def _name(signum: int) -> str:
    return signal.Signals(signum).name


def run_daemon(
    engine: Engine,
    wiring: Wiring,
    *,
    every: str | None = None,
    cron: str | None = None,
    metrics_port: int | None = None,
    host: str | None = None,
    retry: RetryPolicy | None = None,
    webhook_port: int | None = None,
    webhook_host: str | None = None,
) -> int:
    """Run cycles on the schedule until SIGTERM/SIGINT; 0 after a clean stop."""
    trigger = make_trigger(every, cron)
    if wiring.settings.encryption_key is None:
        log.warning("FINTOC_SYNC_ENCRYPTION_KEY is unset: only the link list is synced")
    metrics = SyncMetrics(max_age=health_max_age(trigger, wiring.settings.health_max_age))
    daemon = Daemon(engine, wiring, metrics, retry=retry)
    scheduler = build_scheduler(daemon, trigger)
    realtime = _realtime(engine, wiring, metrics, webhook_port)
    servers: list[HttpServer] = []
    try:
        servers = _serve(wiring, metrics, realtime, metrics_port, host, webhook_port, webhook_host)
        log.info("daemon started: %s", trigger)
        with _SignalStop(daemon, scheduler):
            if not daemon.stopping.is_set():
                scheduler.start()
    finally:
        for server in servers:
            server.shutdown()
        if realtime is not None:
            realtime.stop()
        engine.dispose()
    log.info("daemon stopped")
    return 0
