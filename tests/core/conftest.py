"""Fixtures for the core sync: a sandbox, a client on it, and a pipeline on a real database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session, sessionmaker

from sync import tokens
from sync.client import FintocClient, RetryPolicy
from sync.pipeline import Pipeline
from sync.sandbox import Sandbox

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
def sandbox() -> Iterator[Sandbox]:
    """The default sandbox organization, served over real HTTP on loopback."""
    with Sandbox(seed=42) as sb:
        yield sb


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
                tokens.add_tokens(session, cipher, sb.link_tokens(), clock())
        return Pipeline(client=client, sessions=sessions, cipher=cipher, clock=clock, **kwargs)  # type: ignore[arg-type]

    yield build
    for client in clients:
        client.close()
