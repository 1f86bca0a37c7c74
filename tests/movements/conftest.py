"""Fixtures for movement tests: a sandbox, registered tokens, and a pipeline on its clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from sync import tokens
from sync.client import FintocClient, RetryPolicy
from sync.movements import MovementSync
from sync.pipeline import Pipeline, SyncReport
from sync.sandbox import Sandbox

FAST_RETRY = RetryPolicy(max_attempts=2, base=0.01, cap=0.05)


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
            self.sb.url, self.sb.secret_key, per_page=per_page or self.per_page, retry=FAST_RETRY
        )
        self.clients.append(client)
        return client

    def sync(self, *, initial_days: int = 30, lookback_days: int = 7, **kw: Any) -> SyncReport:
        """One pipeline run with MovementSync as the account hook, on the sandbox clock."""
        client = self.client(kw.pop("per_page", None))
        hook = MovementSync(
            client,
            lookback_days=lookback_days,
            initial_days=initial_days,
            clock=self.now,
            batch_rows=kw.pop("batch_rows", 1000),
        )
        pipeline = Pipeline(
            client=client,
            sessions=self.sessions,
            cipher=tokens.make_cipher(self.fernet_key),
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
def sb() -> Iterator[Sandbox]:
    """A fresh sandbox (seed 42) serving over HTTP."""
    with Sandbox(seed=42) as sandbox:
        yield sandbox


@pytest.fixture
def harness(sb: Sandbox, sessions: sessionmaker[Session], fernet_key: str) -> Iterator[Harness]:
    """The sandbox's link tokens registered (encrypted) in the test database."""
    with sessions.begin() as session:
        tokens.add_tokens(session, tokens.make_cipher(fernet_key), sb.link_tokens(), sb.world.now)
    h = Harness(sb, sessions, fernet_key)
    yield h
    for client in h.clients:
        client.close()
