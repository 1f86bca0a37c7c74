"""`links exchange` and `refresh`, run as a user runs them, against the sandbox."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sync.sandbox import Sandbox
from tests.helpers import run_cli


@pytest.fixture
def env(db_url: str, sandbox: Sandbox, fernet_key: str, tmp_path: Path) -> dict[str, str]:
    """A user's environment: migrated database, sandbox API, vault key."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FINTOC", "DATABASE"))}
    return base | {
        "DATABASE_URL": db_url,
        "FINTOC_API_URL": sandbox.url,
        "FINTOC_SECRET_KEY": sandbox.secret_key,
        "FINTOC_SYNC_ENCRYPTION_KEY": fernet_key,
        "FINTOC_SYNC_MAX_ATTEMPTS": "2",
        "FINTOC_SYNC_BACKOFF_CAP": "0.05",
    }


def test_exchange_registers_the_token_and_syncs_the_link(
    env: dict[str, str], sandbox: Sandbox
) -> None:
    """An exchange token becomes a stored link token and a synced link; reuse is refused."""
    link_id, exchange = sandbox.create_link()
    token = sandbox.world.links[link_id].token
    result = run_cli("links", "exchange", exchange, env=env)
    assert result.returncode == 0, result.stderr
    assert f"link {link_id}: succeeded" in result.stdout
    assert token not in result.stdout + result.stderr
    listed = run_cli("links", "list", env=env)
    assert link_id in listed.stdout
    again = run_cli("links", "exchange", exchange, env=env)  # one-time token
    assert again.returncode == 1
    assert "exchange failed" in again.stdout


def test_refresh_requests_then_reports_in_progress_and_refusals(
    env: dict[str, str], sandbox: Sandbox
) -> None:
    """refresh: stale links get an intent; a second ask is in_progress (exit 0, not failed)."""
    tokens = sandbox.link_tokens()
    assert run_cli("links", "add", *tokens, env=env).returncode == 0
    assert run_cli("sync", env=env).returncode in (0, 1)
    first = run_cli("refresh", "--stale-after", "1s", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "requested" in first.stdout
    second = run_cli("refresh", "--stale-after", "1s", env=env)
    assert second.returncode == 0
    assert "in_progress" in second.stdout
    assert "rejected" in second.stdout  # links needing their holder: an outcome, not a failure
    assert not [t for t in tokens if t in first.stdout + first.stderr]
    fresh = run_cli("refresh", "--stale-after", "3650d", env=env)
    assert "none stale" in fresh.stdout
