"""Fixtures for the run layer: a hand-moved clock, pipelines on the sandbox, and a harness
that registers the sandbox's tokens and syncs on the sandbox clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from sync.api.client import FintocClient, RetryPolicy
from sync.run.movements import MovementSync
from sync.run.pipeline import Pipeline, SyncReport
from sync.sandbox import Sandbox
from sync.store import vault

FAST_RETRY = RetryPolicy(max_attempts=4, base=0.01, cap=0.05, retry_after_floor=0.01)


class FakeClock:
    """A clock the test moves by hand (observed_at values become predictable)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    """A hand-moved clock for the pipeline."""
    return FakeClock()


@pytest.fixture
def make_pipeline(
    sessions: sessionmaker[Session], fernet_key: str, clock: FakeClock
) -> Iterator[Callable[..., Pipeline]]:
    """Build pipelines on a sandbox with a real FintocClient (fast retries, no real sleeps)."""
    clients: list[FintocClient] = []

    def build(
        sb: Sandbox, *, secret_key: str | None = None, register: bool = True, **kwargs: object
    ) -> Pipeline:
        client = FintocClient(
            sb.url,
            secret_key or sb.secret_key,
            retry=FAST_RETRY,
            sleep=lambda _s: None,
            timeout=5.0,
        )
        clients.append(client)
        cipher = Fernet(fernet_key.encode())
        if register:
            with sessions.begin() as session:
                vault.add_tokens(session, cipher, sb.link_tokens(), clock())
        return Pipeline(client=client, sessions=sessions, cipher=cipher, clock=clock, **kwargs)  # type: ignore[arg-type]

    yield build
    for client in clients:
        client.close()


HARNESS_RETRY = RetryPolicy(max_attempts=2, base=0.01, cap=0.05)


@dataclass
class Harness:
    """A sandbox, its tokens registered in the test database, and a way to sync."""

    sb: Sandbox
    sessions: sessionmaker[Session]
    fernet_key: str
    per_page: int = 50
    clients: list[FintocClient] = field(default_factory=list)

    def now(self) -> datetime:
        """The sandbox clock (its data lives around 2026-11-01, not wall time)."""
        return self.sb.world.now

    def today(self) -> date:
        """The sandbox's current date."""
        return self.now().date()

    def client(self, per_page: int | None = None) -> FintocClient:
        """A real HTTP client on the sandbox."""
        client = FintocClient(
            self.sb.url, self.sb.secret_key, per_page=per_page or self.per_page, retry=HARNESS_RETRY
        )
        self.clients.append(client)
        return client

    def sync(
        self,
        *,
        initial_days: int = 30,
        lookback_days: int = 7,
        full_read_every: timedelta = timedelta(0),
        **kw: Any,
    ) -> SyncReport:
        """One pipeline run with MovementSync as the account hook, on the sandbox clock.

        By default every account's movements are read (``full_read_every=0``); tests of the
        skip-unrefreshed-accounts rule pass a longer interval."""
        client = self.client(kw.pop("per_page", None))
        hook = MovementSync(
            client,
            lookback_days=lookback_days,
            initial_days=initial_days,
            full_read_every=full_read_every,
            clock=self.now,
            batch_rows=kw.pop("batch_rows", 1000),
        )
        pipeline = Pipeline(
            client=client,
            sessions=self.sessions,
            cipher=vault.make_cipher(self.fernet_key),
            clock=self.now,
            account_hook=hook,
        )
        return pipeline.run(**kw)

    def scalar(self, sql: str, **params: Any) -> Any:
        """One value from the test database."""
        with self.sessions() as session:
            return session.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[Any]:
        """All rows of a query on the test database."""
        with self.sessions() as session:
            return list(session.execute(text(sql), params).all())


@pytest.fixture
def harness(sb: Sandbox, sessions: sessionmaker[Session], fernet_key: str) -> Iterator[Harness]:
    """The sandbox's link tokens registered (encrypted) in the test database."""
    with sessions.begin() as session:
        vault.add_tokens(session, vault.make_cipher(fernet_key), sb.link_tokens(), sb.world.now)
    h = Harness(sb, sessions, fernet_key)
    yield h
    for client in h.clients:
        client.close()
