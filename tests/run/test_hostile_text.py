"""Hostile text from the API (NUL, lone surrogates, huge ids) never stops a run from closing."""

from __future__ import annotations

import random
import string
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


def _links(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(text("SELECT id FROM fintoc.links ORDER BY id")))


def test_an_id_too_long_for_the_index_drops_that_link_not_the_list(
    pipeline_on: tuple[dict[str, object], Pipeline], engine: Engine
) -> None:
    """A 9,000-character link id is reported as that item's failure; the other links load."""
    routes, pipeline = pipeline_on
    # random, so that Postgres cannot compress the index entry below its ~2,700-byte limit
    rng = random.Random(7)
    huge = "link_" + "".join(rng.choice(string.ascii_letters) for _ in range(9000))
    routes["/v1/links"] = lambda q: json_reply([GOOD, {"id": huge}])
    report = pipeline.run()
    assert _links(engine) == ["link_good"]
    assert any("longer than" in f.message for f in report.failures)


def test_a_deeply_nested_body_is_a_payload_error_for_that_request(
    pipeline_on: tuple[dict[str, object], Pipeline], engine: Engine
) -> None:
    """A 10,000-deep JSON list body or error body fails that request clearly; the run closes."""
    routes, pipeline = pipeline_on
    deep = b"[" * 10_000 + b"]" * 10_000
    routes["/v1/links"] = lambda q: Reply(200, deep, {"Content-Type": "application/json"})
    routes["/v1/links/" + quote(TOKEN, safe="")] = lambda q: Reply(
        400, b'{"error": ' * 10_000 + b"{}" + b"}" * 10_000
    )
    report = pipeline.run()
    kinds = {f.kind for f in report.failures}
    assert "list:PayloadError" in kinds and "InvalidRequestError" in kinds
    assert any("nested too deeply" in f.message for f in report.failures)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM fintoc.sync_runs")).scalar() == "failed"


def test_a_link_the_database_refuses_is_dropped_from_the_list_alone(
    pipeline_on: tuple[dict[str, object], Pipeline], engine: Engine
) -> None:
    """When the one list transaction fails on an item, the list is stored link by link and
    only the refused link is reported."""
    from datetime import UTC, datetime

    from sync.api import schemas
    from sync.run.context import RunContext

    _, pipeline = pipeline_on
    rng = random.Random(3)
    huge = "".join(rng.choice(string.ascii_letters) for _ in range(9000))
    fields = dict.fromkeys(schemas.Link.__dataclass_fields__)
    good = schemas.Link(**(fields | {"id": "link_good"}))  # type: ignore[arg-type]
    bad = schemas.Link(**(fields | {"id": huge}))  # type: ignore[arg-type]
    run = RunContext(run_id=1, now=datetime.now(UTC))
    stored, _ = pipeline._store_links_one_by_one(run, [good, bad])
    assert [link.id for link in stored] == ["link_good"] and _links(engine) == ["link_good"]
    assert [f.kind for f in run.failures] == ["OperationalError"]


TOKEN_B = "link_hostile2_token_qrstuvwxyzabcdef"
SHARED = {
    "id": "acc_shared",
    "object": "account",
    "name": "Cuenta",
    "currency": "CLP",
    "balance": {"available": 100, "current": 100, "limit": 0},
}


def _link_with(link_id: str, balance: int) -> Reply:
    account = SHARED | {"balance": {"available": balance, "current": balance, "limit": 0}}
    return json_reply({"id": link_id, "object": "link", "status": "active", "accounts": [account]})


def test_an_account_two_links_report_stays_with_its_first_owner(
    pipeline_on: tuple[dict[str, object], Pipeline], engine: Engine, fernet_key: str
) -> None:
    """An account id that a second link also reports is kept by the first; the second fails,
    and reruns write no new snapshot for it."""
    routes, pipeline = pipeline_on
    with pipeline.sessions.begin() as session:
        vault.add_tokens(session, Fernet(fernet_key.encode()), [TOKEN_B], FakeClock()())
    routes["/v1/links"] = lambda q: json_reply([{"id": "link_a"}, {"id": "link_b"}])
    routes["/v1/links/" + quote(TOKEN, safe="")] = lambda q: _link_with("link_a", 100)
    routes["/v1/accounts"] = lambda q: json_reply([SHARED])  # the same, by its other route
    pipeline.concurrency = 1  # link_a's token was registered first: it syncs first
    pipeline.run()
    routes["/v1/links/" + quote(TOKEN_B, safe="")] = lambda q: _link_with("link_b", 200)
    reports = [pipeline.run() for _ in range(3)]
    with engine.connect() as conn:
        owner = conn.execute(text("SELECT link_id FROM fintoc.accounts")).scalar()
        snapshots = conn.execute(text("SELECT count(*) FROM fintoc.balance_snapshots")).scalar()
    assert owner == "link_a" and snapshots == 1
    for report in reports:
        assert [f.link_id for f in report.failures] == ["link_b"]
        assert "had it first" in report.failures[0].message


def test_an_unexpected_database_error_is_stored_without_its_sql() -> None:
    """A database error keeps its class and the server's reason; no SQL text or parameters."""
    from sqlalchemy.exc import OperationalError

    from sync.run.context import describe

    class Diag:
        message_primary = "index row requires 9024 bytes, maximum size is 8191"

    class ProgramLimitExceeded(Exception):
        diag = Diag()

    exc = OperationalError("INSERT INTO fintoc.links (id) VALUES (%(id)s)", {"id": "x"}, None)
    exc.orig = ProgramLimitExceeded("index row requires 9024 bytes\nLINE 1: INSERT INTO")
    kind, message = describe(exc)
    assert kind == "OperationalError"
    assert message == (
        "unexpected error: ProgramLimitExceeded: index row requires 9024 bytes, "
        "maximum size is 8191"
    )
    assert "INSERT" not in message and "SQL" not in message
