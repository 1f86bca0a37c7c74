"""`fintoc-sync backfill` against the sandbox over HTTP and a real Postgres."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from sync.app.cli import main
from sync.app.progress import Progress
from sync.run.backfill import Backfill, is_covered, split_range, uncovered
from sync.store import vault
from sync.store.db import make_engine, make_sessionmaker
from sync.store.movements import TRACKED
from tests.run.conftest import Harness
from tests.run.sandbox_data import api_ids, synced_accounts

ROOT = Path(__file__).resolve().parents[2]


def _backfill(h: Harness, sessions: sessionmaker[Session] | None = None) -> Backfill:
    """A Backfill on the sandbox's clock, with its progress kept off the terminal."""
    return Backfill(
        h.client(300),
        sessions or h.sessions,
        vault.make_cipher(h.fernet_key),
        clock=h.now,
        progress=lambda accounts, chunks: Progress(accounts, chunks, stream=io.StringIO()),
    )


def _data(sessions: sessionmaker[Session]) -> list[tuple[object, ...]]:
    """Every stored movement's data columns (not the times fintoc-sync saw it)."""
    columns = ", ".join(["id", *TRACKED, "removed_at"])
    query = text(f"SELECT {columns} FROM fintoc.movements ORDER BY id")
    with sessions() as session:
        return [tuple(r) for r in session.execute(query).all()]


def _assert_matches_api(h: Harness, since: date, until: date) -> None:
    for account in synced_accounts(h.sb):
        expected = api_ids(h.sb, account.id, since) - api_ids(h.sb, account.id, until)
        stored = {
            r.id
            for r in h.rows(
                "SELECT id FROM fintoc.movements WHERE account_id = :a AND post_date < :u",
                a=account.id,
                u=until,
            )
        }
        assert stored == expected, account.id


@pytest.fixture
def other_sessions(pg_server_url: str, template_url: str) -> Iterator[sessionmaker[Session]]:
    """A second migrated database, for a clean run to compare with."""
    name = f"fs_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{make_url(template_url).database}"'))
    engine = make_engine(make_url(pg_server_url).set(database=name).render_as_string(False))
    yield make_sessionmaker(engine)
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_split_and_cover_ranges() -> None:
    """Ranges split into chunks; checkpoints of another chunk size still count as done."""
    chunks = split_range(date(2024, 1, 1), date(2024, 3, 1), 31)
    assert chunks == [(date(2024, 1, 1), date(2024, 2, 1)), (date(2024, 2, 1), date(2024, 3, 1))]
    done = [(date(2024, 1, 1), date(2024, 1, 20)), (date(2024, 1, 20), date(2024, 2, 5))]
    assert is_covered(chunks[0], done)
    assert not is_covered(chunks[1], done)


def test_progress_line_on_a_terminal() -> None:
    """The live line shows accounts, chunks, movements, rate and ETA."""
    stream = io.StringIO()
    ticks = iter([0.0, 2.0, 2.0, 2.0])
    progress = Progress(2, 4, stream=stream, live=True, clock=lambda: next(ticks))
    progress.chunk_done("acc_1", "2024-01-01", "2024-02-01", 100)
    assert "accounts 0/2 · chunks 1/4 · 100 movements · 50/s · ETA 6s" in stream.getvalue()


def test_bad_dates_exit_2(
    monkeypatch: pytest.MonkeyPatch, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed --since is a usage error (exit 2) with a message that shows the format."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    # main() points the root logger at the captured stderr; put the handlers back after.
    monkeypatch.setattr(logging.getLogger(), "handlers", list(logging.getLogger().handlers))
    assert main(["backfill", "--since", "2024-13-01"], io.StringIO()) == 2
    assert "--since must be a date like 2024-01-01" in capsys.readouterr().err
    assert main(["backfill", "--since", "2024-02-01", "--until", "2024-01-01"], io.StringIO()) == 2


def test_backfill_loads_unknown_links_and_twice_gives_same_rows(harness: Harness) -> None:
    """A backfill fetches unknown links, loads the range; a second full read rewrites nothing."""
    h = harness
    since, until = date(2026, 8, 1), date(2026, 11, 1)
    report = _backfill(h).run(since, until, chunk_days=31)
    assert report.exit_code == 0 and report.chunks_done > 0
    _assert_matches_api(h, since, until)
    assert h.scalar("SELECT count(*) FROM fintoc.movement_cursors") == 0  # sync's, not ours
    before = h.rows("SELECT id, xmin::text FROM fintoc.movements ORDER BY id")
    again = _backfill(h).run(since, until, chunk_days=10)
    assert again.chunks_done == 0  # every 10-day chunk is covered by 31-day checkpoints
    with h.sessions.begin() as session:
        session.execute(text("DELETE FROM fintoc.backfill_chunks"))
    reread = _backfill(h).run(since, until, chunk_days=10)
    assert reread.chunks_done > 0 and reread.movements_upserted == 0
    assert h.rows("SELECT id, xmin::text FROM fintoc.movements ORDER BY id") == before
    assert h.scalar("SELECT count(*) FROM fintoc.movement_changes") == 0
    assert h.scalar(
        "SELECT kind || ':' || status FROM fintoc.sync_runs ORDER BY id DESC LIMIT 1"
    ) == ("backfill:succeeded")


def test_bad_payload_fails_that_account_only(harness: Harness) -> None:
    """A malformed movement fails its account with a clear error; the others are committed."""
    h = harness
    bad = "acc_Kp3mWx9ZqL2vBn8T"
    h.sb.faults.add(
        "bad_payload", path=f"/v1/accounts/{bad}/movements", times=None, mutate="huge_amount"
    )
    since, until = date(2026, 10, 1), date(2026, 11, 1)
    report = _backfill(h).run(since, until)
    assert report.exit_code == 1
    assert [f.account_id for f in report.failures] == [bad]
    assert "amount" in report.failures[0].message
    assert "token" not in report.failures[0].message
    assert h.scalar("SELECT count(*) FROM fintoc.movements WHERE account_id = :a", a=bad) == 0
    assert h.scalar("SELECT count(DISTINCT account_id) FROM fintoc.backfill_chunks") > 5


def _share_one_movement_id(h: Harness) -> tuple[str, str]:
    """Two accounts of the sandbox whose movements all come back as ``mov_shared``."""
    sharers = ("acc_Z6AwnGn4idL7DPj4", "acc_Lk9jHg7FdS5aQw3E")
    h.sb.faults.add(
        "bad_payload",
        path="/v1/accounts/(" + "|".join(sharers) + ")/movements",
        times=None,
        mutate="set_id:mov_shared",
    )
    return sharers


def test_a_movement_another_account_owns_is_reported_and_not_taken(harness: Harness) -> None:
    """A backfilled account reporting a movement id another account already has reports the
    conflict for that account, writes the rest of it, and the owner keeps the movement."""
    h = harness
    sharers = _share_one_movement_id(h)
    h.sync(per_page=300)
    owner = h.scalar("SELECT account_id FROM fintoc.movements WHERE id = 'mov_shared'")
    (other,) = set(sharers) - {owner}
    report = _backfill(h).run(h.today() - timedelta(days=20), h.today() + timedelta(days=1))
    assert [(f.account_id, f.kind) for f in report.failures] == [(other, "MovementOwnerConflict")]
    assert report.exit_code == 1 and report.chunks_done > 0
    assert h.scalar("SELECT account_id FROM fintoc.movements WHERE id = 'mov_shared'") == owner
    assert h.scalar("SELECT count(*) FROM fintoc.movement_changes") == 0


def test_backfill_beside_sync_has_no_duplicates(harness: Harness) -> None:
    """A backfill and syncs writing the same account concurrently neither deadlock nor duplicate."""
    h = harness
    since, until = date(2026, 9, 1), h.today() + timedelta(days=1)
    results: list[object] = []
    worker = threading.Thread(
        target=lambda: results.append(_backfill(h).run(since, until, chunk_days=5))
    )
    worker.start()
    reports = [h.sync(initial_days=20) for _ in range(3)]
    worker.join(60)
    assert not worker.is_alive()
    assert all(r.status == "succeeded" for r in reports), [r.failures for r in reports]
    assert results[0].exit_code == 0  # type: ignore[attr-defined]
    _assert_matches_api(h, since, until)
    assert h.scalar("SELECT count(*) FROM fintoc.movement_changes") == 0


def _cli_env(h: Harness, db_url: str) -> dict[str, str]:
    return os.environ | {
        "DATABASE_URL": db_url,
        "FINTOC_API_URL": h.sb.url,
        "FINTOC_SECRET_KEY": h.sb.secret_key,
        "FINTOC_SYNC_ENCRYPTION_KEY": h.fernet_key,
    }


def test_backfill_resumes_after_kill(
    harness: Harness, db_url: str, other_sessions: sessionmaker[Session]
) -> None:
    """A backfill SIGKILLed after its first checkpoint resumes to exactly a clean run's rows."""
    h = harness
    argv = [
        sys.executable,
        "-m",
        "sync",
        "backfill",
        "--since",
        "2026-08-01",
        "--until",
        "2026-11-01",
        "--chunk-days",
        "15",
    ]
    h.sb.faults.add("latency", path="/movements", times=None, seconds=0.05)
    proc = subprocess.Popen(
        argv, env=_cli_env(h, db_url), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 30
    while h.scalar("SELECT count(*) FROM fintoc.backfill_chunks") == 0:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = h.scalar("SELECT count(*) FROM fintoc.backfill_chunks")
    h.sb.faults.clear()
    rerun = subprocess.run(
        argv, env=_cli_env(h, db_url), cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert rerun.returncode == 0, rerun.stderr
    assert f"{first} already done" in rerun.stdout
    assert h.sb.secret_key not in rerun.stderr + rerun.stdout
    with other_sessions.begin() as session:
        vault.add_tokens(session, vault.make_cipher(h.fernet_key), h.sb.link_tokens(), h.now())
    clean = _backfill(h, other_sessions)
    assert clean.run(date(2026, 8, 1), date(2026, 11, 1), chunk_days=15).exit_code == 0
    assert _data(h.sessions) == _data(other_sessions)
    chunks = "SELECT account_id, since, until, movements FROM fintoc.backfill_chunks ORDER BY 1, 2"
    with other_sessions() as session:
        assert h.rows(chunks) == list(session.execute(text(chunks)).all())


def test_uncovered_gaps_between_checkpoints() -> None:
    """uncovered() returns exactly the days of a range no checkpoint covers."""
    d = date
    done = [(d(2024, 1, 10), d(2024, 1, 20)), (d(2024, 1, 25), d(2024, 2, 1))]
    assert uncovered((d(2024, 1, 1), d(2024, 2, 1)), done) == [
        (d(2024, 1, 1), d(2024, 1, 10)),
        (d(2024, 1, 20), d(2024, 1, 25)),
    ]
    assert uncovered((d(2024, 1, 12), d(2024, 1, 18)), done) == []
    assert uncovered((d(2024, 3, 1), d(2024, 3, 5)), done) == [(d(2024, 3, 1), d(2024, 3, 5))]


def test_a_read_that_breaks_keeps_its_checkpoints_and_the_rerun_reads_only_the_rest(
    harness: Harness,
) -> None:
    """One paginated read per account, checkpointed every N rows: a failure on a late page
    keeps the newest days, and the rerun asks only for the days not yet covered."""
    h = harness
    account, since, until = "acc_Kp3mWx9ZqL2vBn8T", date(2026, 5, 1), date(2026, 11, 1)
    expected = len(api_ids(h.sb, account, since) - api_ids(h.sb, account, until))
    assert expected > 200, "the account needs a long history for this test"

    def backfill() -> Backfill:
        b = _backfill(h)
        b.client = h.client(50)
        b.checkpoint_rows = 60
        return b

    h.sb.faults.add("status_500", path="/movements", match_query="page=4", times=None)
    first = backfill().run(since, until, account_id=account)
    assert first.exit_code == 1
    stored = h.scalar("SELECT count(*) FROM fintoc.movements WHERE account_id = :a", a=account)
    spans = h.rows(
        "SELECT since, until, movements FROM fintoc.backfill_chunks WHERE account_id = :a "
        "ORDER BY since",
        a=account,
    )
    assert spans and spans[-1][1] == until  # the newest days were checkpointed
    assert stored == sum(n for _, _, n in spans) >= 60
    h.sb.faults.clear()
    second = backfill().run(since, until, account_id=account)
    assert second.exit_code == 0
    assert second.movements_read == expected - stored  # nothing read twice
    total = h.scalar("SELECT count(*) FROM fintoc.movements WHERE account_id = :a", a=account)
    assert total == expected


def _compare_with_staged(
    h: Harness,
    other_sessions: sessionmaker[Session],
    since: date,
    until: date,
    per_page: int,
    caplog: pytest.LogCaptureFixture,
) -> tuple[object, object]:
    """The same backfill twice: streamed into the harness database, and with ``stream``
    off into ``other_sessions``. Asserts both stored the same and the streamed run fell
    back to the staging table; returns both reports."""
    with other_sessions.begin() as session:
        vault.add_tokens(session, vault.make_cipher(h.fernet_key), h.sb.link_tokens(), h.now())
    streamed, staged = _backfill(h), _backfill(h, other_sessions)
    staged.stream = False
    streamed.client, staged.client = h.client(per_page), h.client(per_page)
    with caplog.at_level(logging.INFO, logger="sync.run.backfill"):
        first = streamed.run(since, until)
    assert "again through the staging table" in caplog.text
    second = staged.run(since, until)
    assert _data(h.sessions) == _data(other_sessions)
    chunks = "SELECT account_id, since, until, movements FROM fintoc.backfill_chunks ORDER BY 1, 2"
    with other_sessions() as session:
        assert h.rows(chunks) == [tuple(r) for r in session.execute(text(chunks)).all()]
    assert first.movements_read == second.movements_read
    assert [(f.account_id, f.kind) for f in first.failures] == [
        (f.account_id, f.kind) for f in second.failures
    ]
    return first, second


def test_a_streamed_read_meeting_another_accounts_id_is_written_the_careful_way(
    harness: Harness, other_sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    """A first load streams each account into one COPY; when an id is already stored under
    another account the COPY is dropped and the days are read again through the staging
    table: the result is the one the batched writer gives, conflict reported included."""
    h = harness
    sharers = _share_one_movement_id(h)
    since, until = h.today() - timedelta(days=20), h.today() + timedelta(days=1)
    report, _ = _compare_with_staged(h, other_sessions, since, until, 300, caplog)
    owner = h.scalar("SELECT account_id FROM fintoc.movements WHERE id = 'mov_shared'")
    (other,) = set(sharers) - {owner}
    assert [(f.account_id, f.kind) for f in report.failures] == [  # type: ignore[attr-defined]
        (other, "MovementOwnerConflict")
    ]
    assert h.scalar("SELECT count(*) FROM fintoc.movements WHERE account_id = :a", a=other) > 0
    assert h.scalar("SELECT count(*) FROM fintoc.backfill_chunks WHERE account_id = :a", a=other)


def test_a_streamed_read_repeating_an_id_is_written_the_careful_way(
    harness: Harness, other_sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    """An id that comes twice in one read (first item of every page) fails the streamed
    COPY; the days are read again and stored as the batched writer stores them."""
    h = harness
    account = "acc_Kp3mWx9ZqL2vBn8T"
    h.sb.faults.add(
        "bad_payload", path=f"/v1/accounts/{account}/movements", times=None, mutate="set_id:twice"
    )
    since, until = date(2026, 8, 1), h.today() + timedelta(days=1)
    _compare_with_staged(h, other_sessions, since, until, 50, caplog)
    assert h.scalar("SELECT count(*) FROM fintoc.movements WHERE id = 'twice'") == 1
    assert h.scalar("SELECT count(*) FROM fintoc.movements WHERE account_id = :a", a=account) > 50


def test_a_streamed_read_that_breaks_leaves_nothing_and_the_connection_usable(
    harness: Harness,
) -> None:
    """A page that fails mid-read ends the open COPY: nothing of the segment is stored,
    the other accounts load on the same pooled connection, and the rerun completes."""
    h = harness
    account, since, until = "acc_Kp3mWx9ZqL2vBn8T", date(2026, 5, 1), date(2026, 11, 1)
    b = _backfill(h)
    b.client = h.client(50)
    h.sb.faults.add(
        "status_500", path=f"/v1/accounts/{account}/movements", match_query="page=3", times=None
    )
    first = b.run(since, until)
    assert [f.account_id for f in first.failures] == [account]
    assert h.scalar("SELECT count(*) FROM fintoc.movements WHERE account_id = :a", a=account) == 0
    assert h.scalar("SELECT count(DISTINCT account_id) FROM fintoc.movements") > 5
    h.sb.faults.clear()
    second = _backfill(h).run(since, until)
    assert second.exit_code == 0
    _assert_matches_api(h, since, until)
