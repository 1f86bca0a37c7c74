"""The daemon's real-time half: the webhook receiver and its worker threads.

The receiver runs on the HTTP server's threads and wakes the workers after each commit,
so an event is usually applied within milliseconds of its 2xx; the workers also poll the
inbox (``idle`` seconds) for events stored by another replica, left by a killed process,
or due for a retry.
"""

from __future__ import annotations

import logging
import math
import threading
from datetime import UTC, datetime

from sqlalchemy import Engine

from sync.api.client import FintocClient
from sync.app.metrics import SyncMetrics
from sync.app.wiring import Wiring
from sync.run.context import Clock, utc_now
from sync.run.webhooks import Received, Receiver
from sync.store import webhook_events
from sync.store.db import make_sessionmaker

log = logging.getLogger(__name__)


class Realtime:
    """Receiver + workers for one daemon; ``stop()`` lets the events in hand finish."""

    def __init__(
        self,
        engine: Engine,
        wiring: Wiring,
        metrics: SyncMetrics,
        *,
        idle: float = 1.0,
        clock: Clock = utc_now,
    ) -> None:
        self.engine, self.wiring, self.metrics, self.idle = engine, wiring, metrics, idle
        self.clock = clock
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.receiver: Receiver = wiring.webhook_receiver(engine, self._stored)
        self._client: FintocClient | None = None
        self._threads: list[threading.Thread] = []
        metrics.watch_oldest_event(self.oldest_age)

    def _stored(self, received: Received) -> None:
        if received.new:
            self.wake.set()

    def start(self) -> Realtime:
        """Start the worker threads (one shared, thread-safe API client)."""
        self._client = self.wiring.client(on_request=self.metrics.on_request)
        for n in range(max(1, self.wiring.settings.webhook_workers)):
            worker = self.wiring.webhook_worker(
                self.engine, self._client, on_settled=self.metrics.webhook_event, clock=self.clock
            )
            thread = threading.Thread(
                target=worker.run,
                args=(self.stopping, self.wake, self.idle),
                name=f"fintoc-sync-webhooks-{n}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        log.info("webhook worker(s) started: %d", len(self._threads))
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the events being applied; unapplied ones stay in the inbox."""
        self.stopping.set()
        self.wake.set()
        for thread in self._threads:
            thread.join(timeout)
        if self._client is not None:
            self._client.close()

    def oldest_age(self) -> float:
        """Seconds since the oldest unprocessed event arrived (NaN if the DB is down)."""
        try:
            with make_sessionmaker(self.engine)() as session:
                oldest = webhook_events.oldest_unprocessed(session)
        except Exception:  # a scrape must not fail because the database does
            return math.nan
        return 0.0 if oldest is None else max(0.0, (datetime.now(UTC) - oldest).total_seconds())
