"""MovementSync over HTTP against the sandbox and a real Postgres."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
from sqlalchemy import text

from sync.sandbox.clock import midnight
from tests.run.conftest import Harness
from tests.run.sandbox_data import api_ids, find, synced_accounts

ALL_MOVEMENTS = "SELECT count(*) FROM fintoc.movements"


def _hours_until(h: Harness, moment: datetime) -> float:
    return (moment - h.now()).total_seconds() / 3600 + 0.01


def test_first_sync_loads_movements(harness: Harness) -> None:
    """A first sync stores every movement of the initial window and sets the cursor to today."""
    h = harness
    report = h.sync()
    assert report.status == "succeeded"
    since = h.today() - timedelta(days=30)
    for account in synced_accounts(h.sb):
        stored = {
            r.id
            for r in h.rows("SELECT id FROM fintoc.movements WHERE account_id = :a", a=account.id)
        }
        assert stored == api_ids(h.sb, account.id, since), account.id
    assert report.counts["movements_upserted"] == h.scalar(ALL_MOVEMENTS) > 0
    cursors = h.rows("SELECT DISTINCT synced_through FROM fintoc.movement_cursors")
    assert cursors == [(h.today(),)]
    assert h.scalar("SELECT count(*) FROM fintoc.movement_changes") == 0


def test_pagination_across_many_pages(harness: Harness) -> None:
    """An account with > 600 movements in its window is read completely over many pages."""
    h = harness
    report = h.sync(initial_days=150, per_page=40, batch_rows=100)
    assert report.status == "succeeded"
    busy = "acc_Kp3mWx9ZqL2vBn8T"  # 5 movements a day
    expected = api_ids(h.sb, busy, h.today() - timedelta(days=150))
    assert len(expected) > 600
    stored = h.scalar(
        "SELECT count(DISTINCT id) FROM fintoc.movements WHERE account_id = :a", a=busy
    )
    assert stored == len(expected)


def test_second_sync_without_change_writes_nothing(harness: Harness) -> None:
    """A second sync with nothing new rewrites no row (xmin kept) and logs no change."""
    h = harness
    h.sync()
    before = dict(h.rows("SELECT id, xmin::text FROM fintoc.movements"))
    report = h.sync()
    after = dict(h.rows("SELECT id, xmin::text FROM fintoc.movements"))
    assert after == before
    assert report.counts.get("movements_upserted", 0) == 0
    assert report.counts.get("movements_changed", 0) == 0
    assert h.scalar("SELECT count(*) FROM fintoc.movement_changes") == 0


def test_lookback_catches_late_posting(harness: Harness) -> None:
    """A movement posted before the cursor but visible only later is caught by the look-back."""
    h = harness
    late = find(
        h.sb,
        6,
        lambda m: m.available_at > h.now() and m.available_at - midnight(m.day) > timedelta(days=3),
    )
    h.sync()
    assert h.scalar("SELECT count(*) FROM fintoc.movements WHERE id = :i", i=late.id) == 0
    cursor = h.scalar("SELECT synced_through FROM fintoc.movement_cursors LIMIT 1")
    assert late.day <= cursor
    h.sb.advance(hours=_hours_until(h, late.available_at))
    h.sync()
    assert h.scalar("SELECT count(*) FROM fintoc.movements WHERE id = :i", i=late.id) == 1


def test_pending_check_confirmation_is_a_change(harness: Harness) -> None:
    """A pending check that resolves is updated and logged with from/to status."""
    h = harness
    check = find(h.sb, 20, lambda m: m.visible(h.now()) and m.status(h.now()) == "pending")
    h.sync()
    assert h.scalar("SELECT status FROM fintoc.movements WHERE id = :i", i=check.id) == "pending"
    assert check.resolve_at is not None
    h.sb.advance(hours=_hours_until(h, check.resolve_at))
    report = h.sync()
    row = h.rows(
        "SELECT kind, changed_fields, old_values, new_values, from_status, to_status "
        "FROM fintoc.movement_changes WHERE movement_id = :i",
        i=check.id,
    )
    assert len(row) == 1
    kind, fields, old, new, from_status, to_status = row[0]
    assert (kind, from_status, to_status) == ("updated", "pending", check.final_status)
    assert {"status", "pending"} <= set(fields)
    assert old["pending"] is True and new["pending"] is False
    assert report.counts["movements_changed"] >= 1
    stored = h.scalar("SELECT status FROM fintoc.movements WHERE id = :i", i=check.id)
    assert stored == check.final_status


def test_removed_movement_is_soft_deleted(harness: Harness) -> None:
    """A movement the bank drops gets removed_at and a 'removed' change, and is not deleted."""
    h = harness
    gone = find(h.sb, 25, lambda m: m.visible(h.now()) and m.removed_at is not None)
    h.sync()
    assert gone.removed_at is not None
    h.sb.advance(hours=_hours_until(h, gone.removed_at))
    report = h.sync(lookback_days=40)
    removed_at = h.scalar("SELECT removed_at FROM fintoc.movements WHERE id = :i", i=gone.id)
    assert removed_at is not None
    kinds = h.rows("SELECT kind FROM fintoc.movement_changes WHERE movement_id = :i", i=gone.id)
    assert kinds == [("removed",)]
    assert report.counts["movements_removed"] >= 1


def test_removed_movement_that_returns_is_restored(harness: Harness) -> None:
    """A soft-deleted movement that the API returns again loses removed_at ('restored')."""
    h = harness
    h.sync()
    # The sandbox never brings a removed movement back, so the earlier removal is simulated.
    victim = h.scalar(
        "SELECT id FROM fintoc.movements WHERE post_date >= :d ORDER BY id LIMIT 1",
        d=midnight(h.today() - timedelta(days=3)),
    )
    with h.sessions.begin() as session:
        session.execute(
            text("UPDATE fintoc.movements SET removed_at = now() WHERE id = :i"), {"i": victim}
        )
    h.sync()
    assert h.scalar("SELECT removed_at FROM fintoc.movements WHERE id = :i", i=victim) is None
    rows = h.rows(
        "SELECT kind, changed_fields FROM fintoc.movement_changes WHERE movement_id = :i", i=victim
    )
    assert rows == [("restored", ["removed_at"])]


def test_failure_mid_account_keeps_cursor_and_rolls_back(harness: Harness) -> None:
    """A bad second page fails the link: its cursor stays and its transaction rolls back."""
    h = harness
    busy, link = "acc_Kp3mWx9ZqL2vBn8T", "link_Qb7wKd2XyzNn4Ra1"
    h.sync()
    first_cursor = h.today()
    h.sb.advance(days=2)
    h.sb.faults.add(
        "bad_payload",
        path=f"/v1/accounts/{busy}/movements",
        match_query="page=2",
        times=None,
        mutate="wrong_type:amount",
    )
    link_movements = (
        "SELECT count(*) FROM fintoc.movements m JOIN fintoc.accounts a ON a.id = m.account_id "
        "WHERE a.link_id = :l"
    )
    before = h.scalar(link_movements, l=link)
    report = h.sync(per_page=10)
    assert report.status == "partial"
    assert [f.link_id for f in report.failures] == [link]
    cursors = dict(
        h.rows(
            "SELECT c.account_id, c.synced_through FROM fintoc.movement_cursors c "
            "JOIN fintoc.accounts a ON a.id = c.account_id WHERE a.link_id = :l",
            l=link,
        )
    )
    assert set(cursors.values()) == {first_cursor}
    assert h.scalar(link_movements, l=link) == before  # earlier accounts of the link too
    others = h.scalar(
        "SELECT count(*) FROM fintoc.movement_cursors WHERE synced_through = :d", d=h.today()
    )
    assert others > 0  # other links went on
    h.sb.faults.clear()
    assert h.sync().status == "succeeded"
    assert (
        h.scalar("SELECT synced_through FROM fintoc.movement_cursors WHERE account_id = :a", a=busy)
        == h.today()
    )


def test_unrefreshed_accounts_are_not_read_again(harness: Harness) -> None:
    """A second sync with no Fintoc refresh in between asks for no movements at all."""
    h = harness
    h.sync(full_read_every=timedelta(hours=1))
    auth = {"Authorization": h.sb.secret_key}
    stats = f"{h.sb.url}/_sandbox/stats"
    before = httpx.get(stats, headers=auth).json()["requests"]
    report = h.sync(full_read_every=timedelta(hours=1))
    requests = httpx.get(stats, headers=auth).json()["requests"] - before
    assert report.status == "succeeded"
    cursors = h.scalar("SELECT count(*) FROM fintoc.movement_cursors")
    never_refreshed = h.scalar("SELECT count(*) FROM fintoc.accounts WHERE refreshed_at IS NULL")
    skipped = report.counts.get("movement_reads_skipped", 0)
    # an account still in its initial load (refreshed_at null) is always read
    assert skipped == cursors - never_refreshed > 0 and never_refreshed == 1
    assert report.counts.get("movements_upserted", 0) == 0
    # the link list, one accounts list per synced link, one movement page per unskipped one
    assert requests == 1 + report.links_synced + never_refreshed


def test_a_refresh_or_the_safety_net_brings_the_read_back(harness: Harness) -> None:
    """After Fintoc refreshes an account (or the full-read interval passes) it is read again."""
    h = harness
    h.sync(full_read_every=timedelta(hours=1))
    h.sb.advance(hours=6)  # one sandbox tick: active links are refreshed
    report = h.sync(full_read_every=timedelta(hours=1))
    refreshed = report.counts.get("movement_reads_skipped", 0)
    total = h.scalar("SELECT count(*) FROM fintoc.movement_cursors")
    assert refreshed < total  # the refreshed accounts were read
    again = h.sync(full_read_every=timedelta(0))
    assert again.counts.get("movement_reads_skipped", 0) == 0


SHARED_MOVEMENT = "mov_shared"
SHARERS = ("acc_Z6AwnGn4idL7DPj4", "acc_Lk9jHg7FdS5aQw3E")  # accounts of two links


def test_a_movement_two_accounts_report_stays_with_its_first_owner(harness: Harness) -> None:
    """A movement id two accounts (of two links) report stays with the account that had it
    first: reruns neither move nor rewrite it nor log a change, and each run reports the
    conflict for the other account's link; the rest of that account is synced."""
    h = harness
    h.sb.faults.add(
        "bad_payload",
        path="/v1/accounts/(" + "|".join(SHARERS) + ")/movements",
        times=None,
        mutate="set_id:" + SHARED_MOVEMENT,
    )
    h.sync(per_page=300)  # one page per account: the rule rewrites each page's first item
    owner, version = h.rows(
        "SELECT account_id, xmin::text FROM fintoc.movements WHERE id = :i", i=SHARED_MOVEMENT
    )[0]
    (other,) = set(SHARERS) - {owner}
    other_link = h.scalar("SELECT link_id FROM fintoc.accounts WHERE id = :a", a=other)
    for _ in range(2):
        report = h.sync(per_page=300)
        conflicts = [f for f in report.failures if f.kind == "MovementOwnerConflict"]
        assert [(f.link_id, f.account_id) for f in conflicts] == [(other_link, other)]
        assert f"{SHARED_MOVEMENT} (account {owner})" in conflicts[0].message
        assert report.status == "partial"
    assert h.rows(
        "SELECT account_id, xmin::text FROM fintoc.movements WHERE id = :i", i=SHARED_MOVEMENT
    ) == [(owner, version)]
    assert h.scalar("SELECT count(*) FROM fintoc.movement_changes") == 0
    cursor = "SELECT synced_through FROM fintoc.movement_cursors WHERE account_id = :a"
    assert h.scalar(cursor, a=other) == h.today()
    assert h.scalar("SELECT count(*) FROM fintoc.movements WHERE account_id = :a", a=other) > 0
