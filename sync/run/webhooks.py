"""Webhooks: receive into the durable inbox, then apply events with the poll's loaders.

Receiving (:class:`Receiver`, called by the HTTP endpoint): verify the signature on the
raw body, parse, and commit the event row — and, for ``link.created``, its link token
encrypted in the vault — in ONE transaction; only then does the endpoint answer 2xx.
A redelivery of a known id commits nothing new (``deliveries`` is counted).

Processing (:class:`WebhookWorker`, threads of the daemon): each event is claimed with
``FOR UPDATE SKIP LOCKED`` in a transaction that stays open while it is applied, so a
process killed mid-event leaves it ``received`` and the next worker (after a restart, or
another replica) takes it. What an event does:

* ``link.created`` / ``link.credentials_changed``: ``Pipeline.run(link_id=…,
  read_list=False)`` — the same code as the poll, reading only that link through its
  token instead of the whole link list — while holding the sync lock, so it never runs
  beside a poll (when a poll holds the lock the event waits, without counting an attempt);
* ``account.refresh_intent.succeeded`` / ``…movements_modified`` / ``…movements_removed``:
  the account's balance and movements are re-read with the poll's MovementSync in the
  claiming transaction, under the per-account row lock the poll also takes; other
  due events of the same account are settled by the same read;
* any other type: ``ignored``.

Every action re-reads the API's current state instead of applying the event's delta, so
duplicates and out-of-order deliveries cannot change anything twice or roll it back.
Failures are retried with capped exponential backoff, then left ``failed`` with a scrubbed
error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Account, WebhookEvent
from sync.api import schemas
from sync.api.webhooks import Event, parse_event, verify_signature
from sync.errors import FintocSyncError
from sync.run.context import Clock, RunContext, describe, utc_now
from sync.run.pipeline import AccountHook, SyncReport
from sync.store import loaders, vault
from sync.store import webhook_events as inbox

log = logging.getLogger(__name__)

LINK_EVENTS = frozenset({"link.created", "link.credentials_changed"})
ACCOUNT_EVENTS = frozenset(
    {
        "account.refresh_intent.succeeded",
        "account.refresh_intent.movements_modified",
        "account.refresh_intent.movements_removed",
    }
)


def action_for(event_type: str) -> str | None:
    """``link``, ``account`` or None (the event is stored as ignored)."""
    if event_type in LINK_EVENTS:
        return "link"
    if event_type in ACCOUNT_EVENTS:
        return "account"
    return None


# ------------------------------------------------------------------------- receiving


@dataclass(frozen=True)
class Received:
    """What the endpoint answers: the event and whether its id was new."""

    event: Event
    new: bool


@dataclass
class Receiver:
    """Verifies a delivery and commits it (and a link.created's token) before 2xx."""

    sessions: sessionmaker[Session]
    secret: str = field(repr=False)
    cipher: Fernet
    clock: Clock = utc_now
    wall: Callable[[], float] = time.time
    tolerance: float = 300.0
    register_secrets: Callable[[Iterable[str]], None] = lambda secrets: None
    on_stored: Callable[[Received], None] = lambda received: None

    def receive(self, signature: str | None, body: bytes) -> Received:
        """Store one delivery; WebhookRejected (4xx, nothing stored) if it is not valid."""
        verify_signature(signature, body, self.secret, self.wall(), self.tolerance)
        event = parse_event(body)
        if event.link_token is not None:
            # before anything could log it: the redactor masks it from here on
            self.register_secrets([event.link_token])
        now = self.clock()
        with self.sessions.begin() as session:
            new = inbox.store_event(session, event, now)
            if event.link_token is not None:
                vault.add_tokens(session, self.cipher, [event.link_token], now)
                # a token the API refused earlier (the link did not exist yet) is good now
                vault.mark_valid(session, event.link_token)
        received = Received(event, new)
        self.on_stored(received)
        return received


# ------------------------------------------------------------------------- processing


class AccountReader(Protocol):
    """What the worker needs from the API client for an account event."""

    def get_link(self, link_token: str) -> dict[str, Any]: ...


class LinkSyncer(Protocol):
    """``Pipeline.run``: the poll's sync of one link."""

    def __call__(
        self, *, kind: str = "sync", link_id: str | None = None, read_list: bool = True
    ) -> SyncReport: ...


class EventFailed(FintocSyncError):
    """Applying an event did not succeed (retried with backoff)."""


@dataclass(frozen=True)
class RetrySchedule:
    """Capped exponential backoff of failing events, then ``failed``."""

    max_attempts: int = 8
    base: float = 2.0
    cap: float = 600.0
    busy_wait: float = 2.0  # a poll holds the sync lock: try the link event again then

    def delay(self, attempts: int) -> float:
        """The wait after the ``attempts``-th failed attempt (1-based)."""
        return float(min(self.cap, self.base * 2 ** min(max(attempts - 1, 0), 30)))


@dataclass
class WebhookWorker:
    """Applies due events, one transaction each (module docstring)."""

    sessions: sessionmaker[Session]
    cipher: Fernet
    client: AccountReader
    sync_link: Callable[[], LinkSyncer]
    account_hook: AccountHook
    sync_lock: Callable[[], AbstractContextManager[object | None]]
    clock: Clock = utc_now
    retry: RetrySchedule = field(default_factory=RetrySchedule)
    on_settled: Callable[[str, str], None] = lambda event_type, outcome: None
    register_secrets: Callable[[Iterable[str]], None] = lambda secrets: None

    def process_one(self) -> bool:
        """Claim and apply the next due event; False when none is due."""
        now = self.clock()
        with self.sessions() as session, session.begin():
            event = inbox.claim_next(session, now)
            if event is None:
                return False
            action = action_for(event.type)
            if action is None:
                inbox.settle(session, [event.id], "ignored", self.clock())
                self.on_settled(event.type, "ignored")
                return True
            try:
                with session.begin_nested():
                    settled = self._apply(session, event, action, now)
            except _Busy:
                inbox.postpone(
                    session,
                    event.id,
                    now + timedelta(seconds=self.retry.busy_wait),
                    "waiting: a poll holds the sync lock",
                    count=False,
                )
                return True
            except Exception as exc:  # one event's failure must not stop the worker
                self._failed(session, event, exc, now)
                return True
            inbox.settle(session, [e.id for e in settled], "processed", self.clock())
            for e in settled:
                self.on_settled(e.type, "processed")
            return True

    def run(self, stop: threading.Event, wake: threading.Event, idle: float = 1.0) -> None:
        """Process until ``stop``; sleep ``idle`` (or until ``wake``) when nothing is due."""
        while not stop.is_set():
            try:
                busy = self.process_one()
            except Exception as exc:  # the database may be down: wait, then go on
                log.error("webhook worker: %s; retrying in %.0fs", describe(exc)[1][:300], idle)
                busy = False
            if not busy:
                wake.wait(idle)
                wake.clear()

    # ---------------------------------------------------------------- actions

    def _apply(
        self, session: Session, event: WebhookEvent, action: str, now: datetime
    ) -> list[WebhookEvent]:
        if event.subject is None:
            raise EventFailed(f"{event.type} names no link or account")
        if action == "link":
            self._sync_link(event.subject)
            return [event]
        siblings = inbox.claim_same_subject(session, event, now)
        self._sync_account(session, event.subject, now)
        return [event, *siblings]

    def _sync_link(self, link_id: str) -> None:
        with self.sync_lock() as held:
            if held is None:
                raise _Busy
            # that link only, through its token: not every page of the link list
            report = self.sync_link()(kind="webhook", link_id=link_id, read_list=False)
        if report.failures or report.links_synced == 0:
            reason = report.failures[0].message if report.failures else "the link was not synced"
            raise EventFailed(f"link {link_id}: {reason}")

    def _sync_account(self, session: Session, account_id: str, now: datetime) -> None:
        link_id = session.scalar(select(Account.link_id).where(Account.id == account_id))
        if link_id is None:
            raise EventFailed(f"account {account_id} is not known yet (the next poll adds it)")
        token = vault.token_for_link(session, self.cipher, link_id)
        if token is None:
            raise EventFailed(f"no link token is registered for link {link_id}")
        self.register_secrets([token])
        _, accounts = schemas.parse_link_with_accounts(self.client.get_link(token))
        account = next((a for a in accounts if a.id == account_id), None)
        if account is None:
            raise EventFailed(f"account {account_id} is no longer in link {link_id}")
        loaders.upsert_accounts(session, [account], now, None)
        self.account_hook(session, token, account, RunContext(run_id=0, now=now))

    def _failed(self, session: Session, event: WebhookEvent, exc: Exception, now: datetime) -> None:
        kind, message = describe(exc)
        error = f"{kind}: {message}"[:1000]
        attempts = event.attempts + 1
        if attempts >= self.retry.max_attempts:
            inbox.settle(session, [event.id], "failed", self.clock(), error)
            log.error("webhook event %s (%s) failed for good: %s", event.id, event.type, error)
            self.on_settled(event.type, "failed")
            return
        delay = self.retry.delay(attempts)
        inbox.postpone(session, event.id, now + timedelta(seconds=delay), error)
        log.warning(
            "webhook event %s (%s) attempt %d failed (%s); retrying in %.0fs",
            event.id,
            event.type,
            attempts,
            error,
            delay,
        )
        self.on_settled(event.type, "retried")


class _Busy(Exception):
    """The sync lock is held by a poll."""
