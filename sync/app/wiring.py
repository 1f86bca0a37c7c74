"""The composition root: the one place that knows every concrete class.

The CLI, the daemon and the demo build a :class:`Wiring` from Settings and the redacting
log filter that ``setup_logging`` attached to the process's handler; everything below
(`run/`, `api/`, `store/`) receives what it needs as arguments. Secrets that enter the
process (the secret key, decrypted link tokens) are registered with that filter here and
nowhere else, so there is no module-level state that accumulates them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from sync.config import Settings
from sync.errors import Interrupted
from sync.redact import RedactingFilter
from sync.run.context import Clock, utc_now
from sync.store import vault
from sync.store.db import make_sessionmaker, try_sync_lock

if TYPE_CHECKING:  # imported where used: `migrate` and `links` need none of them
    from cryptography.fernet import Fernet
    from sqlalchemy import Engine

    from sync.api.client import FintocClient, RetryPolicy
    from sync.run.backfill import Backfill
    from sync.run.movements import MovementSync
    from sync.run.pipeline import AccountHook, Pipeline
    from sync.run.webhooks import Received, Receiver, WebhookWorker


@dataclass
class Wiring:
    """Builds clients, pipelines and backfills for one set of settings."""

    settings: Settings
    redactor: RedactingFilter = field(default_factory=RedactingFilter)

    def register_secrets(self, secrets: Iterable[str]) -> None:
        """Values that log lines and stored errors must never show verbatim."""
        self.redactor.add_secrets(secrets)

    def cipher(self) -> Fernet | None:
        """The token cipher, if an encryption key is configured."""
        key = self.settings.encryption_key
        return vault.make_cipher(key) if key else None

    def client(
        self,
        *,
        on_request: Callable[[str, int | None, int], None] | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> FintocClient:
        """The API client, with one shared request-rate budget.

        ``sleep`` replaces time.sleep between retries (the daemon passes one that
        raises Interrupted when a stop is requested, so SIGTERM is not kept waiting).
        """
        from sync.api.client import FintocClient
        from sync.api.ratelimit import RateLimiter

        settings = self.settings
        key = settings.require_secret_key()
        self.register_secrets([key])
        rate = settings.requests_per_second
        return FintocClient(
            settings.checked_api_url(),
            key,
            api_version=settings.api_version,
            timeout=settings.http_timeout,
            max_response_bytes=settings.max_response_bytes,
            rate_limiter=RateLimiter(rate, burst=max(1, int(rate))),
            on_request=on_request,
            retry=retry or self.retry_policy(),
            sleep=sleep or time.sleep,
        )

    def retry_policy(self) -> RetryPolicy:
        """The retry policy of these settings."""
        from sync.api.client import RetryPolicy

        s = self.settings
        return RetryPolicy(
            max_attempts=s.max_attempts,
            cap=s.backoff_cap,
            # a Retry-After above the cap is obeyed only up to the cap
            retry_after_cap=s.retry_after_cap,
            retry_after_floor=min(0.5, s.retry_after_cap),
        )

    def movement_sync(self, client: FintocClient, clock: Clock = utc_now) -> MovementSync:
        """The per-account movement hook for these settings."""
        from sync.run.movements import MovementSync

        return MovementSync(
            client,
            lookback_days=self.settings.movements_lookback_days,
            initial_days=self.settings.movements_initial_days,
            full_read_every=timedelta(seconds=self.settings.full_read_every),
            clock=clock,
        )

    def pipeline(
        self,
        engine: Engine,
        client: FintocClient,
        *,
        account_hook: AccountHook | None = None,
        clock: Clock = utc_now,
    ) -> Pipeline:
        """A pipeline for these settings (the cipher only if a key is configured)."""
        from sync.run.pipeline import Pipeline

        return Pipeline(
            client=client,
            sessions=make_sessionmaker(engine),
            cipher=self.cipher(),
            clock=clock,
            concurrency=self.settings.concurrency,
            account_hook=account_hook or self.movement_sync(client, clock),
            register_secrets=self.register_secrets,
        )

    def backfill(self, engine: Engine, client: FintocClient) -> Backfill:
        """A backfill for these settings (the encryption key is required)."""
        from sync.run.backfill import Backfill

        return Backfill(
            client,
            make_sessionmaker(engine),
            vault.make_cipher(self.settings.require_encryption_key()),
            concurrency=self.settings.concurrency,
            register_secrets=self.register_secrets,
            cursor_days=max(
                self.settings.movements_lookback_days, self.settings.movements_initial_days
            ),
        )

    def webhook_receiver(
        self, engine: Engine, on_stored: Callable[[Received], None] = lambda r: None
    ) -> Receiver:
        """The webhook inbox writer (the signing secret and the vault key are required)."""
        from sync.run.webhooks import Receiver

        secret = self.settings.require_webhook_secret()
        self.register_secrets([secret])
        return Receiver(
            sessions=make_sessionmaker(engine),
            secret=secret,
            cipher=vault.make_cipher(self.settings.require_encryption_key()),
            register_secrets=self.register_secrets,
            on_stored=on_stored,
        )

    def webhook_worker(
        self,
        engine: Engine,
        client: FintocClient,
        on_settled: Callable[[str, str], None] = lambda event_type, outcome: None,
        clock: Clock = utc_now,
    ) -> WebhookWorker:
        """A worker that applies stored events with the poll's pipeline and movement sync.

        ``clock`` is the sync's (date windows); the inbox's due times use the real clock.
        """
        from sync.run.webhooks import WebhookWorker

        return WebhookWorker(
            sessions=make_sessionmaker(engine),
            cipher=vault.make_cipher(self.settings.require_encryption_key()),
            client=client,
            sync_link=lambda: self.pipeline(engine, client, clock=clock).run,
            account_hook=self.movement_sync(client, clock),
            sync_lock=lambda: try_sync_lock(engine),
            on_settled=on_settled,
            register_secrets=self.register_secrets,
        )


def interruptible_sleep(stop: threading.Event) -> Callable[[float], None]:
    """A sleep that returns as time.sleep does, or raises Interrupted once stop is set."""

    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise Interrupted("stopping: a retry wait was cut short")

    return sleep
