"""Hostile text from the API (NUL, lone surrogates, huge ids) never stops a run from closing."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from sync.api.client import FintocClient, RetryPolicy
from sync.run.pipeline import Pipeline
from sync.store import vault
from tests.hostile import SECRET, HostileApi, Reply, json_reply
from tests.run.conftest import FakeClock

TOKEN = "link_hostile1_token_abcdefghijklmnop"
GOOD = {"id": "link_good", "object": "link", "status": "active", "mode": "test"}
NUL_ID = {"id": "link_\u0000nul", "object": "link", "status": "active"}
SURROGATE_ID = {"id": "link_\udc80sur", "object": "link", "status": "active"}


def _error(message: str) -> Reply:
    return json_reply({"error": {"type": "invalid_request_error", "message": message}}, 400)


@pytest.fixture
def pipeline_on(
    sessions: sessionmaker[Session], fernet_key: str
) -> Iterator[tuple[dict[str, object], Pipeline]]:
    """A pipeline on a hostile API whose routes the test fills in."""
    routes: dict[str, object] = {}
    cipher = Fernet(fernet_key.encode())
    clock = FakeClock()
    with sessions.begin() as session:
        vault.add_tokens(session, cipher, [TOKEN], clock())
    with HostileApi(routes) as api:  # type: ignore[arg-type]
        client = FintocClient(
            api.url, SECRET, retry=RetryPolicy(max_attempts=1), sleep=lambda _s: None, timeout=5
        )
        yield routes, Pipeline(client=client, sessions=sessions, cipher=cipher, clock=clock)
        client.close()


def _advisory_locks(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")).scalar()
            or 0
        )


def test_nul_and_surrogates_in_ids_and_error_messages_still_close_the_run(
    pipeline_on: tuple[dict[str, object], Pipeline], engine: Engine
) -> None:
    """A NUL or lone surrogate in a link id or an API error message is stored replaced; the
    run closes and holds no lock afterwards."""
    routes, pipeline = pipeline_on
    routes["/v1/links"] = lambda q: json_reply([GOOD, NUL_ID, SURROGATE_ID])
    routes["/v1/links/" + quote(TOKEN, safe="")] = lambda q: _error("bad \u0000 and \udc80 here")
    report = pipeline.run()
    assert report.status == "partial"
    with engine.connect() as conn:
        status, errors, summary = conn.execute(
            text("SELECT status, errors::text, error_summary FROM fintoc.sync_runs")
        ).one()
    assert status == "partial"
    assert "\ufffd" in errors and "\ufffd" in summary
    assert "bad \ufffd and \ufffd here" in errors
    assert _advisory_locks(engine) == 0


def test_a_lease_whose_session_broke_never_returns_to_the_pool_with_its_lock(
    sessions: sessionmaker[Session], engine: Engine
) -> None:
    """A run lease released after its connection's transaction failed leaves no lock held."""
    from datetime import UTC, datetime

    from sync.run.runs import RunLease

    lease = RunLease.open(sessions, "sync", datetime.now(UTC))
    with pytest.raises(Exception, match="division by zero"):
        lease.conn.execute(text("SELECT 1/0"))
    lease.release()
    assert _advisory_locks(engine) == 0
