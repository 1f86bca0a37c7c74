"""Synced sandbox data for the analyst-facing tests (the report, the documented SQL).

The sandbox is synced once a sandbox-day through the real client and pipeline. The
pipeline's clock (observed_at, sync_runs) is the sandbox clock moved so that the last
sync lands a few minutes before the wall clock: the views and the documented queries
compare with now() ("the last 7 days"), and the sandbox lives in 2026-11 whatever the
date. The movement sync keeps the sandbox's own clock, so it asks for the dates the
sandbox has. Seed 42 makes one link go login_required and back (ticks 2 and 8), so two
daily syncs observe a real transition.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from sync.api.client import FintocClient, RetryPolicy
from sync.run.movements import MovementSync
from sync.run.pipeline import Pipeline
from sync.sandbox import Sandbox
from sync.store import vault

RETRY = RetryPolicy(max_attempts=2, base=0.01, cap=0.05)


def sync_daily(
    sb: Sandbox, sessions: sessionmaker[Session], fernet_key: str, *, days: int = 2
) -> list[str]:
    """Register the sandbox's tokens, then sync days + 1 times a sandbox-day apart.

    Returns each run's status (every one should be ``succeeded``)."""
    shift = datetime.now(UTC) - timedelta(minutes=5) - (sb.world.now + timedelta(days=days))

    def observed() -> datetime:
        return sb.world.now + shift

    cipher = vault.make_cipher(fernet_key)
    with sessions.begin() as session:
        vault.add_tokens(session, cipher, sb.link_tokens(), observed())
    with FintocClient(sb.url, sb.secret_key, per_page=50, retry=RETRY) as client:
        hook = MovementSync(client, full_read_every=timedelta(0), clock=lambda: sb.world.now)
        pipeline = Pipeline(
            client=client, sessions=sessions, cipher=cipher, clock=observed, account_hook=hook
        )
        statuses = []
        for day in range(days + 1):
            if day:
                sb.advance(days=1)
            statuses.append(pipeline.run(kind="sync").status)
    return statuses
