"""The daemon's webhook receiver as a real process: configuration, and SIGKILL safety."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
from sqlalchemy import Engine, text

from sync.sandbox import Sandbox
from sync.sandbox.webhooks import make_event, signature_header
from tests.app.conftest import REPO, DaemonProcess, free_port, wait_for

SECRET = "whsec_daemon_test_secret"


def _count(engine: Engine, where: str = "true") -> int:
    with engine.connect() as conn:
        return int(conn.scalar(text(f"SELECT count(*) FROM fintoc.webhook_events WHERE {where}")))


def test_receiver_without_a_secret_exits_2_with_a_clear_line(daemon_env: dict[str, str]) -> None:
    """--webhook-port without FINTOC_WEBHOOK_SECRET: exit 2, one line naming the variable."""
    result = subprocess.run(
        [sys.executable, "-m", "sync", "daemon", "--webhook-port", str(free_port())],
        cwd=REPO,
        env=daemon_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "FINTOC_WEBHOOK_SECRET is not set" in result.stderr


def test_sigkill_mid_processing_loses_no_event_and_applies_none_twice(
    start_daemon: Callable[..., DaemonProcess],
    engine: Engine,
    sandbox: Sandbox,
    registered: list[str],
) -> None:
    """Events stored, daemon SIGKILLed while applying them, restarted: each applied once."""
    port = free_port()
    env = {
        "FINTOC_WEBHOOK_SECRET": SECRET,
        "FINTOC_SYNC_REQUESTS_PER_SECOND": "500",
        "FINTOC_SYNC_WEBHOOK_WORKERS": "1",  # one event at a time: the kill finds work left
    }
    daemon = start_daemon("--every", "1h", "--webhook-port", str(port), env=env)
    # the first cycle must have finished: accounts seen mid-cycle are a subset, and with
    # one account left the worker may drain the inbox before the kill
    wait_for(lambda: _first_run_finished(engine), 60, "the first cycle to finish")
    sandbox.faults.add("latency", path=r"^/v1/links/[^/]+$", times=None, seconds=1.0)
    accounts = _accounts(engine)
    assert len(accounts) >= 3, accounts
    for account_id in accounts:
        event = make_event("account.refresh_intent.succeeded", {"refreshed_object_id": account_id})
        body = json.dumps(event).encode()
        header = signature_header(SECRET, body, int(time.time()))
        answer = httpx.post(
            f"http://127.0.0.1:{port}/webhooks/fintoc",
            content=body,
            headers={"Fintoc-Signature": header, "Content-Type": "application/json"},
            timeout=10,
        )
        assert answer.status_code == 200
    wait_for(lambda: _count(engine, "status = 'processed'") >= 1, 30, "a first event applied")
    assert _count(engine, "status = 'received'") > 0
    daemon.proc.kill()  # SIGKILL: no clean-up of any kind
    daemon.proc.wait(10)
    sandbox.faults.clear()
    again = start_daemon("--every", "1h", "--webhook-port", str(free_port()), env=env)
    wait_for(
        lambda: _count(engine, "status = 'processed'") == len(accounts), 60, "every event applied"
    )
    assert _count(engine) == len(accounts)
    assert _count(engine, "attempts = 1") == len(accounts)  # the killed attempt left no trace
    scrape = again.get("/metrics").text
    assert "fintoc_sync_webhook_oldest_unprocessed_seconds 0.0" in scrape
    assert again.terminate() == 0


def _first_run_finished(engine: Engine) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.scalar(text("SELECT count(*) FROM fintoc.sync_runs WHERE finished_at IS NOT NULL"))
        )


def _accounts(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(text("SELECT id FROM fintoc.accounts ORDER BY id")))
