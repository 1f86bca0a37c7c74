"""The invariant checker against a real sync of the sandbox, and against tampered data."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from sync.sandbox.invariants import check_invariants, count_by_category
from tests.run.conftest import Harness


@pytest.fixture
def synced(harness: Harness) -> Iterator[Harness]:
    """The sandbox synced twice, half a day apart (history, movements, a deletion ahead)."""
    assert harness.sync().exit_code == 0
    harness.sb.advance(hours=12)
    assert harness.sync().exit_code == 0
    yield harness


def _rules(engine: Engine, h: Harness) -> list[str]:
    return [v.rule for v in check_invariants(engine, h.sb.truth(movements=True))]


def _exec(engine: Engine, sql: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql))


def test_a_clean_sync_has_no_violation(synced: Harness, engine: Engine) -> None:
    """After syncs at the truth's clock, every invariant holds (movements were compared)."""
    truth = synced.sb.truth(movements=True)
    assert check_invariants(engine, truth, allow_running=False) == []
    compared = synced.scalar("SELECT count(*) FROM fintoc.movements")
    assert compared > 100


def test_a_deleted_link_must_carry_deleted_at(synced: Harness, engine: Engine) -> None:
    """A link deleted in the sandbox and synced after is soft-deleted; clearing it is caught."""
    synced.sb.advance(days=1)  # link_Dd5fGh7JkL9zXc1V is deleted at +36 h
    assert synced.sync().exit_code == 0
    assert _rules(engine, synced) == []
    _exec(engine, "UPDATE fintoc.links SET deleted_at = NULL WHERE id = 'link_Dd5fGh7JkL9zXc1V'")
    assert _rules(engine, synced) == ["L-deleted"]


def test_a_lost_movement_is_counted_as_lost(synced: Harness, engine: Engine) -> None:
    """Deleting a movement inside the synced window is a `lost` violation."""
    _exec(
        engine,
        "DELETE FROM fintoc.movement_changes WHERE movement_id = "
        "(SELECT id FROM fintoc.movements ORDER BY post_date DESC, id LIMIT 1);"
        "DELETE FROM fintoc.movements WHERE id = "
        "(SELECT id FROM fintoc.movements ORDER BY post_date DESC, id LIMIT 1)",
    )
    violations = check_invariants(engine, synced.sb.truth(movements=True))
    assert [(v.rule, v.category) for v in violations] == [("M-present", "lost")]


def test_a_duplicated_history_row_is_counted_as_duplicate(synced: Harness, engine: Engine) -> None:
    """A snapshot or transition written twice is a `duplicate` violation."""
    _exec(
        engine,
        "INSERT INTO fintoc.balance_snapshots (account_id, observed_at, balance_available,"
        " balance_current, balance_limit, currency) SELECT account_id, observed_at"
        " + interval '1 second', balance_available, balance_current, balance_limit, currency"
        " FROM fintoc.balance_snapshots ORDER BY id DESC LIMIT 1;"
        "INSERT INTO fintoc.link_status_transitions (link_id, from_status, to_status,"
        " observed_at) SELECT link_id, to_status, to_status, observed_at + interval '1 second'"
        " FROM fintoc.link_status_transitions ORDER BY id DESC LIMIT 1",
    )
    counts = count_by_category(check_invariants(engine, synced.sb.truth(movements=True)))
    assert counts["duplicate"] == 2
    assert counts["lost"] == 0


def test_a_stale_balance_and_a_live_removed_movement_are_mismatches(
    synced: Harness, engine: Engine
) -> None:
    """A balance that differs from the API, or a removed movement shown live, is caught."""
    _exec(engine, "UPDATE fintoc.accounts SET balance_current = balance_current + 1")
    rules = set(_rules(engine, synced))
    assert {"A-present", "H-snapshot-current"} <= rules


def test_a_movement_of_an_account_not_stored_is_caught(synced: Harness, engine: Engine) -> None:
    """No foreign key guards movements.account_id (migration 0007): the checker does."""
    _exec(
        engine,
        "UPDATE fintoc.movements SET account_id = 'acc_neverStored0001' WHERE id = "
        "(SELECT id FROM fintoc.movements ORDER BY post_date, id LIMIT 1)",
    )
    violations = check_invariants(engine, synced.sb.truth(movements=True))
    assert [v.rule for v in violations if v.rule == "M-account"] == ["M-account"]
    assert "acc_neverStored0001" in next(v.detail for v in violations if v.rule == "M-account")


def test_a_running_row_is_a_violation_when_asked(synced: Harness, engine: Engine) -> None:
    """With allow_running=False, a sync_runs row left `running` is reported."""
    _exec(engine, "UPDATE fintoc.sync_runs SET status = 'running' WHERE id = 1")
    truth = synced.sb.truth(movements=True)
    assert check_invariants(engine, truth) == []
    assert [v.rule for v in check_invariants(engine, truth, allow_running=False)] == ["R-running"]


def test_the_cli_reads_the_truth_over_http(synced: Harness, db_url: str) -> None:
    """`python -m sync.sandbox.invariants` fetches /_sandbox/truth and exits 0 when all holds."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sync.sandbox.invariants",
            "--database-url",
            db_url,
            "--api-url",
            synced.sb.url,
            "--secret-key",
            synced.sb.secret_key,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 violation(s)" in done.stdout
