"""The pure parts of the movement writer, and the cursor rule on a real Postgres."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from sync.api import schemas
from sync.run.movements import MovementSync
from sync.store.movements import (
    advance_cursor,
    change_row,
    diff,
    mark_missing_removed,
    stored_cursor,
    write_batch,
)

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


def test_diff_lists_changed_tracked_columns_only() -> None:
    """diff names the tracked columns that differ and ignores bookkeeping columns."""
    old = {"status": "pending", "pending": True, "amount": 5, "updated_at": NOW}
    new = {"status": "confirmed", "pending": False, "amount": 5, "updated_at": None}
    assert diff(old, new) == ["status", "pending"]


def test_change_row_of_a_returning_movement_is_restored() -> None:
    """A change to a soft-deleted row is logged as 'restored' with removed_at in the diff."""
    old = {"id": "m1", "account_id": "a", "status": "confirmed", "removed_at": NOW}
    new = {"id": "m1", "account_id": "a", "status": "confirmed"}
    row = change_row(old, new, [], NOW)
    assert row["kind"] == "restored"
    assert row["changed_fields"] == ["removed_at"]
    assert row["old_values"] == {"removed_at": NOW.isoformat()}
    assert row["new_values"] == {"removed_at": None}


def test_window_starts_at_cursor_minus_lookback_or_initial_days() -> None:
    """A new account starts initial_days back; a known one at its cursor minus the look-back."""
    hook = MovementSync(None, lookback_days=7, initial_days=30)  # type: ignore[arg-type]
    today = date(2026, 11, 20)
    assert hook.window_start(None, today) == date(2026, 10, 21)
    assert hook.window_start(date(2026, 11, 19), today) == date(2026, 11, 12)
    assert hook.window_start(date(2026, 12, 31), today) == date(2026, 11, 13)


def test_cursor_only_moves_forward(sessions: sessionmaker[Session]) -> None:
    """advance_cursor keeps the later date when asked to go back."""
    with sessions.begin() as session:
        session.execute(
            text(
                "INSERT INTO fintoc.links (id, first_seen_at, last_seen_at) "
                "VALUES ('l', now(), now());"
                "INSERT INTO fintoc.accounts (id, link_id, first_seen_at, last_seen_at) "
                "VALUES ('a', 'l', now(), now())"
            )
        )
        advance_cursor(session, "a", date(2026, 11, 10), NOW)
        advance_cursor(session, "a", date(2026, 11, 5), NOW)
        assert stored_cursor(session, "a") == date(2026, 11, 10)
        advance_cursor(session, "a", date(2026, 11, 12), NOW)
        assert stored_cursor(session, "a") == date(2026, 11, 12)


def _movement(account_id: str, amount: int) -> schemas.Movement:
    payload = {"id": "m1", "amount": amount, "currency": "CLP", "post_date": "2026-11-01T00:00:00Z"}
    return schemas.parse_movement(payload, account_id)


def _owner(session: Session) -> tuple[str, int]:
    row = session.execute(
        text(
            "SELECT account_id, (SELECT count(*) FROM fintoc.movement_changes) "
            "FROM fintoc.movements WHERE id = 'm1'"
        )
    ).one()
    return row[0], row[1]


def test_a_movement_moves_only_once_its_owner_stopped_reporting_it(
    sessions: sessionmaker[Session],
) -> None:
    """Another account's copy of a live movement is refused (counted, not written); once the
    owner no longer reports it (soft-deleted), the other account takes it, logged restored."""
    with sessions.begin() as session:
        session.execute(
            text(
                "INSERT INTO fintoc.links (id, first_seen_at, last_seen_at) "
                "VALUES ('l', now(), now());"
                "INSERT INTO fintoc.accounts (id, link_id, first_seen_at, last_seen_at) "
                "VALUES ('a', 'l', now(), now()), ('b', 'l', now(), now())"
            )
        )
        write_batch(session, [_movement("a", 5)], NOW)
        refused = write_batch(session, [_movement("b", 7)], NOW)
        assert (refused.owned_elsewhere, refused.owners, refused.upserted) == (1, {"m1": "a"}, 0)
        assert _owner(session) == ("a", 0)
        day = date(2026, 11, 1)
        assert mark_missing_removed(session, "a", day, date(2026, 11, 2), [], NOW) == 1
        taken = write_batch(session, [_movement("b", 7)], NOW)
        assert (taken.owned_elsewhere, taken.updated) == (0, 1)
        assert _owner(session) == ("b", 2)
        kind, fields = session.execute(
            text("SELECT kind, changed_fields FROM fintoc.movement_changes ORDER BY id DESC")
        ).first()  # type: ignore[misc]
        assert kind == "restored" and fields == ["account_id", "amount", "removed_at"]
